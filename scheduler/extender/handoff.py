"""What each container of a pod of gpusched's scheduler may see of its node's GPUs (DESIGN §4).

The device hand-off rules the admission webhook applies (docs/security.md, "The device hand-off"):

1. Refused, with the reason, because they hand out devices gpusched never records:
   - a privileged container (init, regular or ephemeral): it sees every device of its node;
   - a volume mount under `/var/run/nvidia-container-devices`: where the toolkit accepts device
     lists as volume mounts (`accept-nvidia-visible-devices-as-volume-mounts`), a mount there
     is how the NVIDIA runtime is told which GPUs to give;
   - a `cdi.k8s.io/*` pod annotation: it asks a CDI-enabled runtime for devices by name (refused
     rather than removed, so the author learns at `kubectl apply`, not from a GPU-less job);
   - at creation, `spec.nodeName` already set: gpusched never binds such a pod, so nothing it
     holds would ever be recorded.
2. gpusched's own record annotations supplied at creation are removed (the binder writes them;
   a copied record would describe GPUs this pod was never given).
3. Each container's environment says exactly what gpusched hands it:
   - a share (`gpusched.io/gpu-milli`): `NVIDIA_VISIBLE_DEVICES` and the MPS limits from the
     record, through the downward API;
   - device-plugin GPUs (any `nvidia.com/` resource): no `NVIDIA_VISIBLE_DEVICES` of its own, so
     the device plugin's stands (the kubelet applies the pod's env after the plugin's: a user's
     `all` would win);
   - anything else: `NVIDIA_VISIBLE_DEVICES=void` (the NVIDIA runtime then adds nothing, and a
     CUDA image's own `all` is overridden) and no other `NVIDIA_*` variable;
   - everywhere, the device-selecting toolkit variables a user wrote are dropped.
     `NVIDIA_DRIVER_CAPABILITIES` stays on containers with a GPU: it picks driver libraries
     for the devices they have, not devices.

What cannot be seen here: `envFrom` (the ConfigMap or Secret is not in the pod) and the image's
environment. An explicit `env` entry wins over both, so shares and GPU-less containers are
covered; a device-plugin container's list is protected only on the node (the toolkit's
`accept-nvidia-visible-devices-envvar-when-unprivileged = false`; docs/security.md).

Pure: the pod as admission sees it (plain dicts) in; a refusal or JSON-patch operations out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from scheduler.core import contract as c

VISIBLE_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"
MPS_THREAD_PCT_ENV = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"
MPS_MEM_LIMIT_ENV = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"
NO_DEVICES = "void"
"""The NVIDIA runtime's value for "no GPU and no driver": it behaves as runc does."""
DEVICE_SELECTING_ENV = frozenset({VISIBLE_DEVICES_ENV, "NVIDIA_MIG_CONFIG_DEVICES", "NVIDIA_MIG_MONITOR_DEVICES",
                                  "NVIDIA_IMEX_CHANNELS", "NVIDIA_GDS", "NVIDIA_MOFED", "NVIDIA_NVSWITCH",
                                  "NVIDIA_GDRCOPY"})
"""Toolkit variables that add device nodes to a container (GPUs, MIG control, IMEX channels,
GPUDirect Storage, InfiniBand, NVSwitch, GDRCopy)."""
TOOLKIT_ENV_PREFIX = "NVIDIA_"
DEVICE_LIST_ROOT = "/var/run/nvidia-container-devices"
CDI_ANNOTATION_PREFIX = "cdi.k8s.io/"
DEVICE_PLUGIN_PREFIX = "nvidia.com/"

SHARE_ENV = ((VISIBLE_DEVICES_ENV, c.ASSIGNED_GPUS_ANNOTATION),
             (MPS_THREAD_PCT_ENV, c.MPS_THREAD_PCT_ANNOTATION),
             (MPS_MEM_LIMIT_ENV, c.MPS_MEM_LIMIT_ANNOTATION))
CONTAINER_LISTS = (("initContainers", "init container"), ("containers", "container"),
                   ("ephemeralContainers", "ephemeral container"))
EPHEMERAL = CONTAINER_LISTS[2:]


def ephemeral_names(pod: Any) -> frozenset[str]:
    """Names of the ephemeral containers a pod already has (its `oldObject` at an update)."""
    spec = _mapping(pod.get("spec")) if isinstance(pod, Mapping) else {}
    return frozenset(ct.get("name") for ct in _containers(spec, "ephemeralContainers") if ct.get("name"))


class Grant(Enum):
    """What gpusched hands one container."""

    SHARE = "share"
    """A share of one GPU: the record's UUID, by the downward API."""
    DEVICE_PLUGIN = "device-plugin"
    """GPUs (or MIG slices) the NVIDIA device plugin allocates."""
    NONE = "none"


def grant_of(container: Any) -> Grant:
    if not isinstance(container, Mapping):
        return Grant.NONE
    asked = _asked(container)
    if c.MILLI_RESOURCE in asked:
        return Grant.SHARE
    return Grant.DEVICE_PLUGIN if any(r.startswith(DEVICE_PLUGIN_PREFIX) for r in asked) else Grant.NONE


def env_from_annotation(name: str, annotation: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                     "fieldPath": f"metadata.annotations['{annotation}']"}}}


# ---------------------------------------------------------------------------------------- refusals
def creation_refusal(pod: Mapping[str, Any]) -> str:
    """Why a new pod may not be created as it is (rule 1), or ""."""
    spec = _mapping(pod.get("spec"))
    if spec.get("nodeName"):
        return (f"spec.nodeName is set at creation ({spec['nodeName']}): gpusched never binds such a pod, so it "
                f"would hold GPUs nobody records; leave nodeName empty (choose nodes with nodeSelector or affinity)")
    for key in sorted(_mapping(_mapping(pod.get("metadata")).get("annotations"))):
        if key.startswith(CDI_ANNOTATION_PREFIX):
            return (f"annotation {key} asks the container runtime for devices directly; gpusched pods get GPUs "
                    f"only through gpusched (remove it)")
    return containers_refusal(spec, CONTAINER_LISTS)


def containers_refusal(spec: Mapping[str, Any], lists: Iterable[tuple[str, str]], *,
                       existing: frozenset[str] = frozenset()) -> str:
    """Why one of the containers in `lists` may not run (privileged, a device-list mount), or "".
    Containers named in `existing` were admitted before and are not judged again."""
    for key, what in lists:
        raw = spec.get(key) or []
        if not isinstance(raw, list):
            return f"spec.{key} is not a list"
        for i, container in enumerate(raw):
            # The API server's schema makes these so; a review that says otherwise is refused, not judged.
            if not isinstance(container, Mapping) or not isinstance(container.get("name"), str):
                return f"spec.{key}[{i}] is not a container with a name"
        for container in _containers(spec, key):
            name = container["name"]
            if name in existing:
                continue
            if _mapping(container.get("securityContext")).get("privileged") is True:
                return (f"{what} {name} is privileged: a privileged container sees every GPU of its node, whatever "
                        f"gpusched gave it")
            for mount in container.get("volumeMounts") or []:
                path = mount.get("mountPath") if isinstance(mount, Mapping) else None
                if isinstance(path, str) and _under(posixpath.normpath(path), DEVICE_LIST_ROOT):
                    return (f"{what} {name} mounts {path}: a mount under {DEVICE_LIST_ROOT} tells the NVIDIA "
                            f"runtime which GPUs to give")
    return ""


# ---------------------------------------------------------------------------------------- patches
def record_annotation_ops(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Remove gpusched's own annotations from a new pod (rule 2); the user's stay."""
    annotations = _mapping(_mapping(pod.get("metadata")).get("annotations"))
    return [{"op": "remove", "path": f"/metadata/annotations/{_escape(key)}"} for key in sorted(annotations)
            if key.startswith(c.PREFIX) and key not in c.USER_POD_ANNOTATIONS]


def env_ops(spec: Mapping[str, Any], lists: Iterable[tuple[str, str]], *,
            existing: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Give every container in `lists` the environment of its grant (rule 3), idempotently.
    Containers named in `existing` are left as they are (the API refuses changes to admitted
    ephemeral containers)."""
    ops: list[dict[str, Any]] = []
    for key, _what in lists:
        for i, container in enumerate(spec.get(key) or []):
            if not isinstance(container, Mapping) or container.get("name") in existing:
                continue
            current = container.get("env")
            wanted = wanted_env(current if isinstance(current, list) else [], grant_of(container))
            if current is None and not wanted:
                continue
            if current != wanted:
                ops.append({"op": "replace" if "env" in container else "add", "path": f"/spec/{key}/{i}/env",
                            "value": wanted})
    return ops


def wanted_env(env: list[Any], grant: Grant) -> list[Any]:
    """The user's entries minus what selects devices, then what `grant` hands the container."""
    if grant is Grant.NONE:
        kept = [e for e in env if not _name(e).startswith(TOOLKIT_ENV_PREFIX)]
        return [*kept, {"name": VISIBLE_DEVICES_ENV, "value": NO_DEVICES}]
    ours = {name for name, _ in SHARE_ENV} if grant is Grant.SHARE else set()
    kept = [e for e in env if _name(e) not in DEVICE_SELECTING_ENV | ours]
    if grant is Grant.SHARE:
        kept += [env_from_annotation(name, annotation) for name, annotation in SHARE_ENV]
    return kept


# ---------------------------------------------------------------------------------------- helpers
def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [ct for ct in spec.get(key) or [] if isinstance(ct, Mapping)]


def _asked(container: Mapping[str, Any]) -> set[str]:
    """Resource names the container asks a non-zero amount of (requests or limits)."""
    resources = _mapping(container.get("resources"))
    return {name for part in (resources.get("requests"), resources.get("limits")) if isinstance(part, Mapping)
            for name, amount in part.items() if str(amount).strip() not in ("", "0")}


def _name(entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return name if isinstance(name, str) else ""


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def _escape(key: str) -> str:
    """A JSON-pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")
