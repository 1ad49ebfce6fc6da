"""What a test does to the loopback cluster: nodes, pods, Jobs' pods, and what it waits for.

No kubelet or controller-manager runs, so this plays their parts and nothing more: a node is
created and its status patched Ready with its allocatable resources (as a kubelet would report)
and its `node.kubernetes.io/not-ready` taint lifted (as the node lifecycle controller would);
a Job's pods are created from its template (as the Job controller would); pods are force-deleted
to end them. Scheduling, binding, evicting and recording are left to kube-scheduler and gpusched.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlane, wait_until
from tests.cluster.extender import ExtenderProcess
from tests.kube import objects
from tests.kube.objects import gpu_list

TEST_NAMESPACES = ("ml-demo", "team-vision", "gangs", "burst", "teams-a", "teams-b", "verdicts")


def node_object(name: str, *, gpus: int = 8, model: str = "NVIDIA-A100-SXM4-80GB", memory_mib: int = 81920,
                cpu: str = "64", mem: str = "512Gi", sharing: str = "exclusive",
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A GPU node as the agent and the device plugin would describe it (no heartbeat: no agent check)."""
    allocatable = {"cpu": cpu, "memory": mem, "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                         "annotations": {"gpusched.io/gpus": orjson.dumps(
                             gpu_list(name, gpus, model=model, memory=memory_mib, sharing=sharing)).decode()}},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable),
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": None, "lastTransitionTime": None}]}}


def pod_object(name: str, namespace: str, **request: Any) -> dict[str, Any]:
    """`tests.kube.objects.pod` as a user writes it: no UID, timestamps or status (the API server's)."""
    obj = objects.pod(name, namespace=namespace, **request)
    for key in ("uid", "creationTimestamp"):
        del obj["metadata"][key]
    del obj["status"]
    obj["spec"].update(restartPolicy="Never", terminationGracePeriodSeconds=0)
    obj["spec"]["containers"][0]["image"] = "registry.k8s.io/pause:3.10"
    return obj


def gang_pods(gang: str, namespace: str, size: int, *, gpus: int, cpu: str = "8", mem: str = "32Gi",
              timeout_s: int | None = None, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    annotations = {"gpusched.io/gang-size": str(size), **(extra or {})}
    if timeout_s is not None:
        annotations["gpusched.io/gang-timeout-seconds"] = str(timeout_s)
    return [pod_object(f"{gang}-{i}", namespace, gpus=gpus, cpu=cpu, mem=mem, labels={"gpusched.io/gang": gang},
                       annotations=dict(annotations)) for i in range(size)]


def job_pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods the Job controller creates for an Indexed Job (names, labels, owner), all at once."""
    meta, spec = job["metadata"], job["spec"]
    template = spec["template"]
    out = []
    for index in range(int(spec.get("parallelism", 1))):
        pod = copy.deepcopy(template)
        pod_meta = pod.setdefault("metadata", {})
        pod_meta.update(name=f"{meta['name']}-{index}", namespace=meta["namespace"])
        pod_meta.setdefault("labels", {}).update({"job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"],
                                                  "batch.kubernetes.io/job-completion-index": str(index)})
        pod_meta.setdefault("annotations", {})["batch.kubernetes.io/job-completion-index"] = str(index)
        pod_meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                        "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]
        pod["spec"]["terminationGracePeriodSeconds"] = 0
        out.append({"apiVersion": "v1", "kind": "Pod", **pod})
    return out


@dataclass
class Cluster:
    plane: ControlPlane
    extenders: list[ExtenderProcess] = field(default_factory=list)
    scheduler_log: Path | None = None

    @property
    def core(self):
        return self.plane.core

    @property
    def extender(self) -> ExtenderProcess:
        return self.extenders[0]

    # --------------------------------------------------------------------- nodes
    def add_nodes(self, nodes: Iterable[dict[str, Any]]) -> list[str]:
        names = []
        for obj in nodes:
            status = obj.pop("status")
            self.core.create_node(obj)
            self.core.patch_node_status(obj["metadata"]["name"], {"status": status})
            # The API server taints a new node not-ready; the node lifecycle controller would lift it.
            self.core.patch_node(obj["metadata"]["name"], {"spec": {"taints": None}})
            names.append(obj["metadata"]["name"])
        return names

    # ---------------------------------------------------------------------- pods
    def create_pods(self, pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        created = []
        for obj in pods:
            answer = self.core.create_namespaced_pod(obj["metadata"]["namespace"], obj, _preload_content=False)
            created.append(orjson.loads(answer.data))
        return created

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        answer = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return orjson.loads(answer.data)["items"]

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return orjson.loads(self.core.read_namespaced_pod(name, namespace, _preload_content=False).data)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def wait_bound(self, namespace: str, names: Iterable[str], *, timeout: float) -> dict[str, dict[str, Any]]:
        names = list(names)

        def all_bound():
            pods = {p["metadata"]["name"]: p for p in self.pods(namespace)}
            if all((pods.get(n) or {}).get("spec", {}).get("nodeName") for n in names):
                return {n: pods[n] for n in names}
            return None
        return wait_until(f"{len(names)} pods of {namespace} bound", all_bound, timeout=timeout, interval=0.2)

    def bound_names(self, namespace: str) -> set[str]:
        return {p["metadata"]["name"] for p in self.pods(namespace) if p["spec"].get("nodeName")}

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        answer = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}",
                                                 _preload_content=False)
        return orjson.loads(answer.data)["items"]

    def wait_event(self, namespace: str, name: str, reason: str, fragment: str, *, timeout: float) -> str:
        def found():
            for event in self.events(namespace, name):
                if event.get("reason") == reason and fragment in (event.get("message") or ""):
                    return event["message"]
            return None
        return wait_until(f"a {reason} event on {namespace}/{name} saying {fragment!r}", found, timeout=timeout)

    def force_delete(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as e:
            if e.status != 404:
                raise

    # ------------------------------------------------------------------- cleanup
    def reset(self) -> None:
        """Every test pod and node gone, and every live extender's books empty again."""
        for namespace in TEST_NAMESPACES:
            for pod in self.pods(namespace):
                self.force_delete(namespace, pod["metadata"]["name"])
        for node in self.core.list_node().items:
            self.core.delete_node(node.metadata.name)
        for extender in self.extenders:
            if extender.alive:
                wait_until("the extender's books to empty", lambda e=extender: _empty(e.get("/state")), timeout=30)


def _empty(state: dict[str, Any]) -> bool:
    return not state.get("nodes") and not any(g.get("pods") for n in state.get("nodes", []) for g in n["gpus"])


def gpus_of(pod: dict[str, Any]) -> list[str]:
    value = (pod["metadata"].get("annotations") or {}).get("gpusched.io/gpus", "")
    return [u for u in value.split(",") if u]


def held_gpus(pods: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """UUID -> the pods recorded on it (a whole-GPU UUID under two pods is a double allocation)."""
    out: dict[str, list[str]] = {}
    for pod in pods:
        if pod["spec"].get("nodeName"):
            for uuid in gpus_of(pod):
                out.setdefault(uuid, []).append(pod["metadata"]["name"])
    return out


def elapsed(since: float) -> float:
    return time.monotonic() - since
