"""Do the books match reality on this node? (DESIGN §4 "How a container actually gets its GPU")

Pure detection: records, the kubelet's allocations, NVML's processes and their owners in;
corrections and findings out. Applying them (patching pods, emitting events, metrics) is
the publisher's and the runner's job. No side effects; `now` and the previous pass's
`absent_since` are passed in and the new one handed back.

Three checks, in this order:
1. Whole-GPU pods (`nvidia.com/gpu`): the NVIDIA device plugin chose the devices; the
   kubelet's pod-resources say which. When the recorded UUIDs differ (as sets) from the
   GPUs the kubelet reports, the record is corrected to those GPUs in GPU index order.
   A whole-GPU pod without any record (bound by another scheduler) gets one, so the
   extender counts the right GPUs. Device ids are mapped to GPUs as the device plugin writes
   them: `GPU-<uuid>`, `GPU-<uuid>::<replica>` (time-slicing), `<index>` (deviceIDStrategy:
   index) and `MIG-<uuid>` (MIG "single" strategy: the slice's parent GPU).
2. Phantom allocations: a record of a pod the kubelet does not run. A pod bound a moment
   ago may not be admitted yet, so it must stay absent for `grace_s` before it is reported.
3. Unaccounted GPU use: a process on a GPU that no record explains. A process is explained
   when its pod (by cgroup UID) has that GPU in its record or its kubelet devices, or when it
   is GPU infrastructure (the MPS server, DCGM). A process whose owner cannot be read is
   explained by any record or allocation on that GPU (we cannot say more). Shares appear in
   no device plugin, so for them this check is the only one.

When the kubelet cannot be asked (`kubelet=None`), checks 1 and 2 are skipped, never
guessed: a missing answer must not turn every pod into a phantom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scheduler.agent.podresources.client import PodDevices
from scheduler.agent.proc import ProcessOwner
from scheduler.agent.readings import GpuReading
from scheduler.agent.records import PodRecord
from scheduler.core.contract import GPU_RESOURCE

INFRASTRUCTURE_COMMANDS = frozenset({"nvidia-cuda-mps-server", "nvidia-cuda-mps-control", "nv-hostengine",
                                     "nvidia-persistenced", "dcgm-exporter"})
"""Processes that hold a GPU context on behalf of everyone (MPS server, DCGM): no record needed."""

DEFAULT_PHANTOM_GRACE_S = 120.0
_LISTED_PIDS = 5

PHANTOM = "phantom-allocation"
UNACCOUNTED = "unaccounted-gpu-use"
UNKNOWN_DEVICE = "unknown-device"


@dataclass(frozen=True, slots=True)
class Correction:
    """Rewrite pod `namespace/name`'s `gpusched.io/gpus` from `old` to `new` (UUIDs, index order)."""

    namespace: str
    name: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def value(self) -> str:
        return ",".join(self.new)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something an operator should know. `key` identifies it across passes (an event is sent
    when a key first appears); `message` is the event text and may change."""

    kind: str
    key: str
    message: str
    gpu: str = ""
    """The GPU's UUID, when the finding is about one GPU."""
    count: int = 1
    """How many things it is about (processes, for unaccounted use)."""


@dataclass(frozen=True, slots=True)
class Reconciliation:
    corrections: tuple[Correction, ...] = ()
    findings: tuple[Finding, ...] = ()
    absent_since: Mapping[str, float] = field(default_factory=dict)
    """`namespace/name` -> when the kubelet was first seen not running that recorded pod."""

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)


def resolve_device_id(device_id: str, gpus: Sequence[GpuReading]) -> str | None:
    """The UUID of the GPU a device-plugin id stands for, or None when it is none of ours."""
    base = device_id.split("::", 1)[0]
    for g in gpus:
        if g.uuid == base:
            return g.uuid
    if base.isdigit():
        return next((g.uuid for g in gpus if g.index == int(base)), None)
    for g in gpus:
        if any(m.uuid == base for m in g.mig_devices):
            return g.uuid
    return None


def reconcile(*, gpus: Sequence[GpuReading], records: Sequence[PodRecord], kubelet: Mapping[str, PodDevices] | None,
              owners: Mapping[int, ProcessOwner], now: float, absent_since: Mapping[str, float],
              grace_s: float = DEFAULT_PHANTOM_GRACE_S) -> Reconciliation:
    index_of = {g.uuid: g.index for g in gpus}
    corrections: list[Correction] = []
    findings: list[Finding] = []
    allocated: dict[str, set[str]] = {}  # pod key -> GPUs the kubelet gave it
    new_absent: dict[str, float] = {}

    # 1 + 2: against the kubelet.
    if kubelet is not None:
        for record in records:
            running = kubelet.get(record.key)
            if running is None:
                if record.has_record:
                    since = absent_since.get(record.key, now)
                    new_absent[record.key] = since
                    if now - since >= grace_s:
                        names = _gpu_names(record.recorded, index_of)
                        findings.append(Finding(PHANTOM, f"{PHANTOM}/{record.key}",
                                                f"pod {record.key} holds {names} in its record but the kubelet "
                                                f"does not run it"))
                continue
            ids = running.device_ids(GPU_RESOURCE)
            real: set[str] = set()
            for device_id in ids:
                uuid = resolve_device_id(device_id, gpus)
                if uuid is None:
                    findings.append(Finding(UNKNOWN_DEVICE, f"{UNKNOWN_DEVICE}/{record.key}/{device_id}",
                                            f"pod {record.key} was given device {device_id!r}, which is no GPU "
                                            f"NVML reports on this node"))
                else:
                    real.add(uuid)
            allocated[record.key] = real
            if record.whole_gpus > 0 and real and real != set(record.recorded):
                new = tuple(sorted(real, key=lambda u: index_of[u]))
                corrections.append(Correction(record.namespace, record.name, record.recorded, new))

    # 3: against NVML's processes.
    explained_by_uid: dict[str, set[str]] = {}
    claimed: set[str] = set()
    for record in records:
        gpus_of_pod = set(record.recorded) | allocated.get(record.key, set())
        claimed |= gpus_of_pod
        if record.uid:
            explained_by_uid[record.uid] = gpus_of_pod
    by_uid = {r.uid: r for r in records if r.uid}
    for g in gpus:
        strays = [why for p in g.processes
                  if (why := _unexplained(p.pid, owners.get(p.pid, ProcessOwner()), g, explained_by_uid, by_uid,
                                          claimed, index_of))]
        if strays:
            listed = "; ".join(strays[:_LISTED_PIDS]) + (f"; and {len(strays) - _LISTED_PIDS} more"
                                                          if len(strays) > _LISTED_PIDS else "")
            findings.append(Finding(UNACCOUNTED, f"{UNACCOUNTED}/{g.uuid}",
                                    f"GPU {g.index} ({g.uuid}) runs {len(strays)} process(es) no record explains: "
                                    f"{listed}", gpu=g.uuid, count=len(strays)))

    return Reconciliation(corrections=tuple(corrections), findings=tuple(findings), absent_since=new_absent)


def _unexplained(pid: int, owner: ProcessOwner, gpu: GpuReading, explained_by_uid: Mapping[str, set[str]],
                 by_uid: Mapping[str, PodRecord], claimed: set[str], index_of: Mapping[str, int]) -> str:
    """Why process `pid` on `gpu` is unaccounted for, or "" when something explains it."""
    if owner.command in INFRASTRUCTURE_COMMANDS:
        return ""
    if owner.pod_uid:
        pod_gpus = explained_by_uid.get(owner.pod_uid)
        if pod_gpus is None:
            return f"pid {pid} ({owner.command or '?'}) of pod uid {owner.pod_uid}, which has no GPU record here"
        if gpu.uuid in pod_gpus:
            return ""
        record = by_uid[owner.pod_uid]
        return (f"pid {pid} ({owner.command or '?'}) of pod {record.key}, whose record says "
                f"{_gpu_names(tuple(sorted(pod_gpus, key=lambda u: index_of.get(u, 1 << 30))), index_of)}")
    if owner.known:
        return f"pid {pid} ({owner.command}) runs outside any pod"
    if gpu.uuid in claimed:
        return ""
    return f"pid {pid} (owner unknown) on a GPU no pod claims"


def _gpu_names(uuids: Sequence[str], index_of: Mapping[str, int]) -> str:
    if not uuids:
        return "no GPU"
    return ", ".join(f"GPU {index_of[u]}" if u in index_of else f"{u} (not on this node)" for u in uuids)
