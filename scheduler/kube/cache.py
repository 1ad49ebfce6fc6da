"""The cluster as the API shows it, and the Engine's books derived from it.

Reflectors (`reflector.py`) hand this cache whole lists (`replace`) and watch events (`apply`);
it keeps a slim copy of each object and turns every change into Engine calls. It runs on the
event loop thread only (the Engine is single-threaded) and does no I/O: it is tested by feeding
it API JSON.

The books are a function of the objects, never of the order they arrived in, so a restarted
extender that lists everything rebuilds exactly the books it had (DESIGN §1):
- a node: `nodeinfo.node_from_api` from the agent's annotation (or GFD labels), taken out of
  service while its agent heartbeat is stale (`core.staleness`) or its annotation unreadable;
- a pod holds capacity from the moment it is bound (`spec.nodeName`) until it is terminal
  (Succeeded/Failed) or deleted, whichever scheduler bound it;
- a bound pod with a record (`gpusched.io/gpus`, `core.allocation.parse_assigned`) that
  `record_trust` believes holds exactly the recorded GPUs (a record it sets aside is listed in
  `untrusted` and counts as none); one without a record but asking for GPUs (another scheduler's, or
  bound by hand) is charged GPUs by `core.unrecorded.guess_slots`, re-derived for the whole
  node in (creationTimestamp, UID) order after every change there; anything else holds its
  CPU and memory only;
- a pod that is not bound holds nothing, even with a record: that is what a crash between the
  binder's annotation patch and its Binding leaves, and the pod's next bind overwrites it.
  A pending gang member carrying `gpusched.io/reservation` hands it to `ReservationRestorer`, which
  rebuilds its gang's reservation once every piece is there (`reservation_restore`).
  Pending pods of our scheduler (not being deleted, no `schedulingGates`) are shown to the
  Engine (`observe_pending`), so a bind after a restart finds them, and a pod that fits nowhere
  waits for reclaim even though kube-scheduler never asked us about it (with every
  `nvidia.com/gpu` requested its own filters reject a whole-GPU pod first). They are judged again
  on each of their events and every `sweep`, and forgotten when bound, gated, deleted or ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson

from scheduler.core import contract as c
from scheduler.core.allocation import Allocation
from scheduler.core.engine import Engine
from scheduler.core.nodeinfo import NodeInfoError, node_from_api
from scheduler.core.request import InvalidRequest, PodRequest, parse_pod
from scheduler.core.staleness import DEFAULT_STALENESS, heartbeat_reason
from scheduler.core.unrecorded import guess_slots
from scheduler.kube.record_trust import RecordVerdict, judge_record
from scheduler.kube.reservation_restore import ReservationRestorer

log = logging.getLogger(__name__)

NODES, PODS, NAMESPACES, QUOTAS, POD_GROUPS = "nodes", "pods", "namespaces", "resourcequotas", "podgroups"
KINDS = (NODES, PODS, NAMESPACES, QUOTAS, POD_GROUPS)
_TERMINAL = ("Succeeded", "Failed")
_GPUSCHED_PREFIX = "gpusched.io/"


@dataclass(frozen=True)
class CacheSettings:
    scheduler_name: str = "gpu-scheduler"
    staleness: timedelta = DEFAULT_STALENESS


@dataclass(frozen=True)
class PodRecord:
    """A pod reduced to what scheduling reads (no managedFields, env, volumes, status detail)."""

    uid: str
    namespace: str
    name: str
    node: str
    phase: str
    scheduler_name: str
    deleting: bool
    gated: bool
    """`spec.schedulingGates` not empty: kube-scheduler does not try it yet."""
    resource_version: str
    created: str
    slim: Mapping[str, Any]
    scheduler_error: str = ""
    """kube-scheduler's last attempt failed with an error, not a verdict (`PodScheduled` False,
    reason `SchedulerError`: the extender unreachable, a bind that timed out): its message."""
    """The pod as API JSON, trimmed to what `parse_pod` reads."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def holds(self) -> bool:
        return bool(self.node) and self.phase not in _TERMINAL

    def pending_for(self, scheduler_name: str) -> bool:
        """Unbound, not ended, not being deleted, not gated, and `scheduler_name`'s to schedule."""
        return (not self.node and self.phase not in _TERMINAL and not self.deleting and not self.gated
                and self.scheduler_name == scheduler_name)

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.slim["metadata"].get("annotations") or {}


def slim_pod(obj: Mapping[str, Any]) -> PodRecord:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(_GPUSCHED_PREFIX)}

    def containers(key: str) -> list[dict[str, Any]]:
        return [{"name": ct.get("name"), "resources": ct.get("resources") or {}} for ct in spec.get(key) or []]

    slim_meta = {k: meta[k] for k in ("name", "namespace", "uid", "creationTimestamp") if k in meta}
    labels = meta.get("labels") or {}
    slim_meta["labels"] = {k: labels[k] for k in c.POD_LABELS if k in labels}  # all gpusched reads
    slim_meta["annotations"] = annotations
    slim_spec: dict[str, Any] = {"containers": containers("containers"), "initContainers": containers("initContainers")}
    for key in ("nodeName", "schedulerName", "priority", "overhead"):
        if spec.get(key) is not None:
            slim_spec[key] = spec[key]
    scheduled = next((cd for cd in status.get("conditions") or () if cd.get("type") == "PodScheduled"), {})
    error = str(scheduled.get("message") or "error") if scheduled.get("reason") == "SchedulerError" else ""
    return PodRecord(
        scheduler_error=error,
        uid=str(meta.get("uid") or ""), namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
        node=str(spec.get("nodeName") or ""), phase=str(status.get("phase") or ""),
        scheduler_name=str(spec.get("schedulerName") or "default-scheduler"),
        deleting=bool(meta.get("deletionTimestamp")), gated=bool(spec.get("schedulingGates")),
        resource_version=str(meta.get("resourceVersion") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        slim=MappingProxyType({"metadata": slim_meta, "spec": slim_spec}))


class ClusterCache:
    """Slim copies of nodes, pods, namespaces, ResourceQuotas and PodGroups; the Engine follows them."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime],
                 settings: CacheSettings = CacheSettings()) -> None:
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.pods: dict[str, PodRecord] = {}
        self.nodes: dict[str, Mapping[str, Any]] = {}
        """Node name -> the node's metadata.annotations/labels and status.allocatable (for re-reads)."""
        self.namespaces: dict[str, Mapping[str, str]] = {}
        """Namespace -> its labels (`gpusched.io/team`)."""
        self.quotas: dict[tuple[str, str], Mapping[str, Any]] = {}
        """(namespace, name) -> {"hard": spec.hard, "used": status.used} of a ResourceQuota."""
        self.pod_groups: dict[tuple[str, str], Mapping[str, Any]] = {}
        """(namespace, name) -> PodGroup spec (minMember, scheduleTimeoutSeconds)."""
        self._by_node: dict[str, set[str]] = {}
        self._unrecorded: dict[str, set[str]] = {}
        self._node_problem: dict[str, str] = {}
        self._heartbeat: dict[str, str] = {}
        self.reservations = ReservationRestorer(engine, clock=lambda: clock().timestamp())
        """Gang reservations rebuilt from their pending members' annotations (a restart, a standby)."""
        self.discrepancies: dict[str, str] = {}
        """Pod key -> why its record could not be applied whole (shown in /state)."""
        self.untrusted: dict[str, str] = {}
        """Pod key -> why its record is not counted at all (`record_trust`; /state and a metric)."""
        self.on_change: list[Callable[[str, str, Mapping[str, Any] | None], None]] = []
        """Observers of namespace/quota/PodGroup changes (kind, key, object or None when gone)."""

    # ---------------------------------------------------------------- reflector sink
    def replace(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        """A fresh full list: upsert what is listed, delete what is no longer there."""
        items = list(items)
        if kind == PODS:
            records = [slim_pod(o) for o in items]
            seen = {r.uid for r in records}
            for uid in [u for u in self.pods if u not in seen]:
                self._pod_gone(uid)
            # Bound pods with records first, so guesses for unrecorded ones fill around them.
            for record in sorted(records, key=lambda r: (not r.holds, r.uid)):
                self._pod_seen(record)
            return
        keys = {self._key(kind, o) for o in items}
        for key in [k for k in self._store(kind) if k not in keys]:
            self._deleted(kind, key)
        for obj in items:
            self.apply(kind, "MODIFIED", obj)

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) on one object."""
        if kind == PODS:
            record = slim_pod(obj)
            if event == "DELETED":
                self._pod_gone(record.uid)
            else:
                self._pod_seen(record)
            return
        key = self._key(kind, obj)
        if event == "DELETED":
            self._deleted(kind, key)
        elif kind == NODES:
            self._node_seen(obj)
        else:
            self._store(kind)[key] = self._keep(kind, obj)
            for observer in self.on_change:
                observer(kind, _key_text(key), self._store(kind)[key])

    def sweep(self) -> None:
        """Re-judge agent heartbeats (a silent agent sends no node updates for the watch to see),
        then pending pods (capacity they were judged against may have been taken since)."""
        now = self.clock()
        for name, heartbeat in self._heartbeat.items():
            reason = self._node_problem.get(name) or heartbeat_reason(
                heartbeat, now=now, staleness=self.settings.staleness, node=name)
            self.engine.set_node_unavailable(name, reason)
        for record in self.pending_pods():
            request = self.engine.pending(record.uid) or _request(record)
            if request is not None:
                self.engine.observe_pending(request)

    # ------------------------------------------------------------------------ nodes
    def _node_seen(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        annotations = meta.get("annotations") or {}
        heartbeat = annotations.get(c.AGENT_HEARTBEAT_ANNOTATION) or ""
        problem, gpus = "", None
        raw = annotations.get(c.NODE_GPUS_ANNOTATION)
        if raw:
            try:
                gpus = orjson.loads(raw)
            except orjson.JSONDecodeError:
                problem = f"node {name}: annotation {c.NODE_GPUS_ANNOTATION} is not JSON"
        reason = problem or heartbeat_reason(heartbeat, now=self.clock(), staleness=self.settings.staleness, node=name)
        try:
            node = node_from_api(obj, gpu_annotation=gpus, unavailable_reason=reason)
        except NodeInfoError as e:
            problem = str(e)
            node = node_from_api(obj, gpu_annotation=None, unavailable_reason=problem)
        self.nodes[name] = {"annotations": dict(annotations), "labels": dict(meta.get("labels") or {})}
        self._node_problem[name] = problem
        if heartbeat:
            self._heartbeat[name] = heartbeat
        else:
            self._heartbeat.pop(name, None)
        row = self.engine.state.index.get(name)
        if row is not None and self.engine.state.specs[row] == node:
            return
        self._settle(name, lambda: self.engine.upsert_node(node))

    # ------------------------------------------------------------------------- pods
    def _pod_seen(self, record: PodRecord) -> None:
        old = self.pods.get(record.uid)
        pending = record.pending_for(self.settings.scheduler_name)
        if old is not None and _same_for_books(old, record) and not pending:
            self.pods[record.uid] = record
            return  # a status or metadata change that scheduling does not read
        self.pods[record.uid] = record
        if not pending:
            self.reservations.gone(record.uid)
        if old is not None and old.node and old.node != record.node:  # never happens: nodeName is immutable
            self._forget_on_node(record.uid, old.node)
        if not record.holds:
            if record.phase in _TERMINAL:
                self._release(record.uid, record.node, record.key)
            elif pending:  # judged again on every event: kube-scheduler's status writes say it tried
                request = _request(record)
                if request is not None:
                    self.engine.observe_pending(request)
                    self.reservations.pending(request, record.annotations)
            elif (not record.node and record.scheduler_name == self.settings.scheduler_name
                  and record.uid not in self.engine.allocations):
                self.engine.release(record.uid)  # gated or being deleted: not pending for now
            return
        self._by_node.setdefault(record.node, set()).add(record.uid)
        request = _request(record) or _resources_only(record)
        uuids, milli, memory = self._trusted_record(record, request)
        unrecorded = self._unrecorded.setdefault(record.node, set())
        if not uuids and request.wants_gpu:
            self._settle(record.node, lambda: unrecorded.add(record.uid))
            return
        alloc = _recorded(record, request, uuids, milli, memory)
        existing = self.engine.allocations.get(record.uid)
        if record.uid in unrecorded or existing is None or _books_key(existing) != _books_key(alloc):
            def change() -> None:
                unrecorded.discard(record.uid)
                self._restore(alloc)
            self._settle(record.node, change)

    def _trusted_record(self, record: PodRecord, request: PodRequest) -> tuple[tuple[str, ...], int | None, int | None]:
        """The record the books may count (`record_trust`); one set aside is remembered, logged once."""
        verdict: RecordVerdict = judge_record(record.annotations, node=record.node, pod_scheduler=record.scheduler_name,
                                              scheduler_name=self.settings.scheduler_name,
                                              device_plugin_gpus=request.gpus)
        if not verdict.distrust:
            self.untrusted.pop(record.key, None)
        elif self.untrusted.get(record.key) != verdict.distrust:
            self.untrusted[record.key] = verdict.distrust
            log.warning("pod %s on %s: record not counted: %s", record.key, record.node, verdict.distrust)
        return verdict.uuids, verdict.milli, verdict.memory_mib

    def _pod_gone(self, uid: str) -> None:
        self.reservations.gone(uid)
        record = self.pods.pop(uid, None)
        if record is not None:
            self._release(uid, record.node, record.key)
        else:
            self.engine.release(uid)

    def _release(self, uid: str, node: str, key: str) -> None:
        self.discrepancies.pop(key, None)
        self.untrusted.pop(key, None)
        if not node:
            self.engine.release(uid)
            return
        self._settle(node, lambda: (self.engine.release(uid), self._forget_on_node(uid, node)))

    def _forget_on_node(self, uid: str, node: str) -> None:
        self._by_node.get(node, set()).discard(uid)
        self._unrecorded.get(node, set()).discard(uid)

    def _settle(self, node: str, change: Callable[[], object]) -> None:
        """Apply `change` to the node's books with every unrecorded pod's guess lifted, then
        charge the unrecorded pods again, in canonical order, to what is free afterwards."""
        lifted = self._unrecorded_on(node)
        for record in lifted:
            self.engine.release(record.uid)
        change()
        row = self.engine.state.index.get(node)
        for record in self._unrecorded_on(node):
            request = _request(record) or _resources_only(record)
            uuids: tuple[str, ...] = ()
            if row is not None:
                slots = guess_slots(self.engine.state, row, gpus=request.gpus, milli=request.gpu_milli,
                                    memory_mib=request.gpu_memory_mib)
                all_uuids = self.engine.state.uuids(row)
                uuids = tuple(all_uuids[s] for s in slots)
            share = request.is_share
            alloc = _allocation(record, request, uuids=uuids, milli=request.gpu_milli if share else c.MILLI_PER_GPU,
                                memory=(request.gpu_memory_mib,) if share else (), share=share)
            self._restore(alloc)
            wanted = request.gpus or (1 if share else 0)
            if row is not None and len(uuids) < wanted:
                self.discrepancies[record.key] = (f"holds {wanted} GPU(s) without a gpusched record; "
                                                  f"only {len(uuids)} free to count")

    def _unrecorded_on(self, node: str) -> list[PodRecord]:
        return sorted((self.pods[u] for u in self._unrecorded.get(node, ()) if u in self.pods),
                      key=lambda r: (r.created, r.uid))

    def _restore(self, alloc: Allocation) -> None:
        problem = self.engine.restore(alloc)
        if problem and problem != "node unknown":
            self.discrepancies[alloc.key] = problem
            log.warning("pod %s on %s: record applied with a discrepancy: %s", alloc.key, alloc.node, problem)
        else:
            self.discrepancies.pop(alloc.key, None)

    # ------------------------------------------------------------ other kinds
    def _store(self, kind: str) -> dict:
        return {NODES: self.nodes, NAMESPACES: self.namespaces, QUOTAS: self.quotas, POD_GROUPS: self.pod_groups}[kind]

    @staticmethod
    def _key(kind: str, obj: Mapping[str, Any]) -> Any:
        meta = obj.get("metadata") or {}
        if kind in (NODES, NAMESPACES):
            return meta.get("name") or ""
        return (meta.get("namespace") or "", meta.get("name") or "")

    @staticmethod
    def _keep(kind: str, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        if kind == NAMESPACES:
            return MappingProxyType(dict((obj.get("metadata") or {}).get("labels") or {}))
        if kind == QUOTAS:
            return MappingProxyType({"hard": dict((obj.get("spec") or {}).get("hard") or {}),
                                     "used": dict((obj.get("status") or {}).get("used") or {})})
        return MappingProxyType(dict(obj.get("spec") or {}))

    def _deleted(self, kind: str, key: Any) -> None:
        if kind == NODES:
            self.nodes.pop(key, None)
            self._heartbeat.pop(key, None)
            self._node_problem.pop(key, None)
            self.engine.remove_node(key)
            return
        if self._store(kind).pop(key, None) is not None:
            for observer in self.on_change:
                observer(kind, _key_text(key), None)

    # ------------------------------------------------------------------- views
    def team_of(self, namespace: str, pod_labels: Mapping[str, str] | None = None) -> str:
        """DESIGN §3: the pod's `gpusched.io/team` label, else its namespace's, else the namespace."""
        if pod_labels and pod_labels.get(c.TEAM_LABEL):
            return pod_labels[c.TEAM_LABEL]
        return (self.namespaces.get(namespace) or {}).get(c.TEAM_LABEL) or namespace

    def heartbeats(self) -> dict[str, str]:
        """Node -> its agent's last heartbeat stamp (nodes without an agent are absent)."""
        return dict(self._heartbeat)

    def pending_pods(self) -> list[PodRecord]:
        """Pods of our scheduler waiting to be bound (not gated, not being deleted), oldest first."""
        return sorted((r for r in self.pods.values() if r.pending_for(self.settings.scheduler_name)),
                      key=lambda r: (r.created, r.uid))

    def stalled_pods(self) -> list[PodRecord]:
        """Pending pods whose last scheduling attempt failed with an error (see `requeue`)."""
        return [r for r in self.pending_pods() if r.scheduler_error]

    def state_section(self) -> dict[str, Any]:
        """The `kube` section of GET /state: derived from the objects only (identical after a restart)."""
        foreign = sum(1 for r in self.pods.values() if r.holds and r.scheduler_name != self.settings.scheduler_name)
        unrecorded = sorted(self.pods[u].key for uids in self._unrecorded.values() for u in uids if u in self.pods)
        return {"kube": {
            "schedulerName": self.settings.scheduler_name,
            "nodes": len(self.nodes), "pods": len(self.pods),
            "boundPods": sum(1 for r in self.pods.values() if r.holds),
            "boundByOtherSchedulers": foreign,
            "pendingPods": len(self.pending_pods()),
            "unrecordedGpuPods": unrecorded,
            "discrepancies": dict(sorted(self.discrepancies.items())),
            "untrustedRecords": dict(sorted(self.untrusted.items())),
            "namespaces": len(self.namespaces), "resourceQuotas": len(self.quotas),
            "podGroups": sorted(_key_text(k) for k in self.pod_groups),
        }}


# --------------------------------------------------------------------------- helpers
def _key_text(key: Any) -> str:
    return "/".join(key) if isinstance(key, tuple) else str(key)


def _same_for_books(old: PodRecord, new: PodRecord) -> bool:
    return (old.slim, old.phase, old.deleting, old.gated) == (new.slim, new.phase, new.deleting, new.gated)


def _request(record: PodRecord) -> PodRequest | None:
    try:
        return parse_pod(record.slim)
    except InvalidRequest:
        return None


def _resources_only(record: PodRecord) -> PodRequest:
    """A pod whose gpusched request is invalid still holds the CPU, memory and GPUs it runs with."""
    slim = record.slim
    meta = {**slim["metadata"], "annotations": {}, "labels": {}}
    try:
        return parse_pod({**slim, "metadata": meta})
    except InvalidRequest:
        spec = {**slim["spec"], "containers": [], "initContainers": [], "overhead": None}
        return parse_pod({"metadata": meta, "spec": spec})


def _recorded(record: PodRecord, request: PodRequest, uuids: tuple[str, ...], milli: int | None,
              memory: int | None) -> Allocation:
    share = bool(uuids) and milli is not None and milli < c.MILLI_PER_GPU
    return _allocation(record, request, uuids=uuids, milli=(milli if share else c.MILLI_PER_GPU) if uuids else 0,
                       memory=((memory or 0),) if share else (), share=share)


def _allocation(record: PodRecord, request: PodRequest, *, uuids: tuple[str, ...], milli: int,
                memory: tuple[int, ...], share: bool) -> Allocation:
    annotations = record.annotations
    gang = request.gang.name if request.gang else ""
    return Allocation(
        uid=record.uid, namespace=record.namespace, name=record.name, node=record.node,
        gpu_uuids=uuids, milli=milli if uuids else 0, gpu_memory_mib=memory if uuids else (),
        cpu_milli=request.cpu_milli, memory_mib=request.memory_mib,
        mps=share and c.MPS_THREAD_PCT_ANNOTATION in annotations, share=share and bool(uuids),
        borrowed=annotations.get(c.BORROWED_ANNOTATION) == "true", team=request.team_label or "",
        gang=gang, priority=request.priority, created=record.created)


def _books_key(alloc: Allocation) -> tuple:
    """What an allocation charges the books with; equal keys mean restoring changes nothing."""
    memory = alloc.gpu_memory_mib if alloc.share else ()
    return (alloc.node, alloc.gpu_uuids, alloc.milli if alloc.gpu_uuids else 0, memory, alloc.share,
            alloc.cpu_milli, alloc.memory_mib)
