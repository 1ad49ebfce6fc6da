"""Everything the agent says to the Kubernetes API, and nothing else does.

- the node's annotations (`gpusched.io/gpus`, the heartbeat, driver and CUDA versions):
  patched only when a value changed, or when the heartbeat is due (merge patch of the
  changed keys only, so other writers' annotations are never touched);
- pod record corrections: a merge patch of `gpusched.io/gpus` carrying the pod's
  `resourceVersion` as a precondition, so a record the extender rewrote meanwhile is not
  overwritten (409 Conflict; the next pass looks again);
- events: on the node (phantom allocations, unaccounted GPU use, GPUs turning unhealthy and
  back) and on corrected pods.

Every API failure is one `KubeError` line; the runner counts it and retries.
RBAC: nodes get/patch; pods list/patch; events create.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from scheduler.core import contract as c
from scheduler.core.staleness import format_rfc3339

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
EVENT_NAMESPACE = "default"
"""Where node events go (as the kubelet's do): nodes are not namespaced."""
COMPONENT = "gpusched-agent"
REQUEST_TIMEOUT_S = 15.0
"""Per API call: a hung API server must not hang the loop (the client waits forever by default)."""


def _call_options(timeout_s: float) -> dict[str, Any]:
    """Raw JSON back (the API's own shape, what `records` and `nodeinfo` read), and a timeout."""
    return {"_preload_content": False, "_request_timeout": timeout_s}


class KubeError(Exception):
    """An API call failed. One line; `reason` labels the error metric."""

    reason = "kube-api"


def _one_line(what: str, e: Exception) -> KubeError:
    if isinstance(e, ApiException):
        detail = ""
        try:
            detail = json.loads(e.body or "{}").get("message", "")
        except (ValueError, AttributeError):
            detail = (e.body or "")[:200] if isinstance(e.body, str) else ""
        text = f"{what}: HTTP {e.status} {e.reason or ''}".rstrip()
        return KubeError(f"{text}: {detail}".splitlines()[0] if detail else text)
    return KubeError(f"{what}: {type(e).__name__}: {e}".splitlines()[0])


def _json(response) -> dict[str, Any]:
    return json.loads(response.data)


class NodePublisher:
    """The node's annotations. `heartbeat_s` is the most time between two writes."""

    def __init__(self, api: k8s.CoreV1Api, node: str, *, heartbeat_s: float = 30.0,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.api = api
        self.node = node
        self._call = _call_options(timeout_s)
        self.heartbeat_s = heartbeat_s
        self.labels: Mapping[str, str] = {}
        self.uid = ""
        self._current: dict[str, str] = {}
        self._last_write: float | None = None
        self._fetched = False

    def fetch(self) -> None:
        """Read the node: its labels (GFD's sharing strategy), UID (for events) and our annotations
        as they stand, so that a restarted agent does not rewrite what is already there."""
        try:
            node = _json(self.api.read_node(self.node, **self._call))
        except ApiException as e:
            if e.status == 404:
                raise KubeError(f"node {self.node!r} not found (set --node or NODE_NAME to this node's name)") from None
            raise _one_line(f"reading node {self.node}", e) from None
        except Exception as e:  # urllib3 connection errors and the like
            raise _one_line(f"reading node {self.node}", e) from None
        self._absorb(node)
        self._fetched = True

    def _absorb(self, node: Mapping[str, Any]) -> None:
        meta = node.get("metadata") or {}
        self.labels = dict(meta.get("labels") or {})
        self.uid = meta.get("uid") or ""
        self._current = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("gpusched.io/")}

    def publish(self, desired: Mapping[str, str], *, now: float, wall: datetime) -> bool:
        """Write what changed, plus the heartbeat when due. True when a patch was sent."""
        if not self._fetched:
            self.fetch()
        changed = {k: v for k, v in desired.items() if self._current.get(k) != v}
        due = self._last_write is None or now - self._last_write >= self.heartbeat_s
        if not changed and not due:
            return False
        patch = {**changed, c.AGENT_HEARTBEAT_ANNOTATION: format_rfc3339(wall)}
        try:
            node = _json(self.api.patch_node(self.node, {"metadata": {"annotations": patch}},
                                             _content_type=MERGE_PATCH, **self._call))
        except Exception as e:
            raise _one_line(f"patching node {self.node}", e) from None
        self._absorb(node)
        self._last_write = now
        if changed:
            log.info("node %s: wrote %s", self.node, ", ".join(sorted(changed)))
        return True


class ClusterWriter:
    """Pods on this node and events about them."""

    def __init__(self, api: k8s.CoreV1Api, node: str, *, node_uid: Callable[[], str] = lambda: "",
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.api = api
        self.node = node
        self._call = _call_options(timeout_s)
        self._node_uid = node_uid

    def pods(self) -> list[dict[str, Any]]:
        """Every pod bound to this node, as API JSON."""
        try:
            response = self.api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.node}",
                                                             **self._call)
        except Exception as e:
            raise _one_line(f"listing pods on node {self.node}", e) from None
        return list(_json(response).get("items") or [])

    def correct_record(self, *, namespace: str, name: str, value: str, resource_version: str) -> bool:
        """Set the pod's `gpusched.io/gpus` to `value` unless the pod changed since it was listed.
        False on a conflict (someone else wrote first) or when the pod is gone."""
        body = {"metadata": {"resourceVersion": resource_version,
                             "annotations": {c.ASSIGNED_GPUS_ANNOTATION: value}}}
        try:
            self.api.patch_namespaced_pod(name, namespace, body, _content_type=MERGE_PATCH, **self._call)
        except ApiException as e:
            if e.status in (404, 409):
                log.info("pod %s/%s: record not corrected (%s); will look again", namespace, name,
                         "gone" if e.status == 404 else "changed meanwhile")
                return False
            raise _one_line(f"patching pod {namespace}/{name}", e) from None
        except Exception as e:
            raise _one_line(f"patching pod {namespace}/{name}", e) from None
        return True

    def node_event(self, *, reason: str, message: str, warning: bool, wall: datetime, key: str) -> None:
        self._event(EVENT_NAMESPACE, {"kind": "Node", "apiVersion": "v1", "name": self.node,
                                      "uid": self._node_uid() or self.node},
                    reason=reason, message=message, warning=warning, wall=wall, key=key)

    def pod_event(self, *, namespace: str, name: str, uid: str, reason: str, message: str, wall: datetime) -> None:
        self._event(namespace, {"kind": "Pod", "apiVersion": "v1", "namespace": namespace, "name": name, "uid": uid},
                    reason=reason, message=message, warning=False, wall=wall, key=f"{namespace}/{name}/{message}")

    def _event(self, namespace: str, involved: dict[str, str], *, reason: str, message: str, warning: bool,
               wall: datetime, key: str) -> None:
        stamp = format_rfc3339(wall)
        # A name derived from what the event is about and when: a retried create is a 409, not a duplicate.
        digest = hashlib.sha256(f"{key}|{stamp}".encode()).hexdigest()[:12]
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{involved['name']}.gpusched.{digest}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self.node},
            "reportingComponent": COMPONENT, "reportingInstance": f"{COMPONENT}-{self.node}",
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        try:
            self.api.create_namespaced_event(namespace, body, **self._call)
        except ApiException as e:
            if e.status == 409:
                return
            raise _one_line(f"creating event {reason} in {namespace}", e) from None
        except Exception as e:
            raise _one_line(f"creating event {reason} in {namespace}", e) from None


def connect(kubeconfig: str | None = None) -> k8s.CoreV1Api:
    """The API client: `kubeconfig` when given, else the pod's service account (in-cluster),
    else the default kubeconfig (~/.kube/config, $KUBECONFIG). Raises KubeError."""
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig)
        else:
            try:
                config.load_incluster_config()
            except ConfigException:
                config.load_kube_config()
    except (ConfigException, OSError, TypeError, ValueError) as e:
        where = kubeconfig or "in-cluster service account or ~/.kube/config"
        raise KubeError(f"no usable Kubernetes configuration ({where}): {str(e).splitlines()[0] if str(e) else e}") \
            from None
    return k8s.CoreV1Api()
