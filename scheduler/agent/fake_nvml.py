"""A node's GPUs described in YAML, behind the same `NvmlSource` interface as the real reader.

For tests, demos and `gpusched agent --fake-nvml FILE` on a laptop. The file describes what
NVML would report (GPUs, NVLinks, MIG devices, processes, health counters, telemetry), the
MPS control daemon the host would run, and a script of changes over time:

    driverVersion: "550.54.15"
    cudaVersion: "12.4"
    mpsControlDaemon: false          # an MPS control daemon's pipe is present on the host
    gpus:
      - index: 0
        uuid: GPU-...
        name: NVIDIA A100-SXM4-80GB  # as NVML reports it (not GFD-normalised)
        memoryMiB: 81920
        pciBusId: "00000000:07:00.0"
        numaNode: 0
        computeMode: default         # default | exclusive-process | prohibited | exclusive-thread
        migEnabled: false
        migDevices: [{uuid, profile: 1g.10gb, memoryMiB, gpuInstance, computeInstance}]
        nvlinks: [{link: 0, remote: "00000000:0f:00.0", remoteType: gpu, active: true}]
        processes: [{pid: 4242, usedMiB: 1024, podUid: "<uid>", command: python}]
        ecc: {uncorrectedVolatile: 0}
        retiredPagesPending: false
        remappedRows: {pending: false, failed: false}
        telemetry: {memoryUsedMiB: 0, utilizationPct: 0, temperatureC: 30, powerW: 60}
        lost: false                  # fell off the bus
    script:                          # applied after the fake has been read N times
      - {afterReads: 2, xid: {gpu: 0, xid: 79}}
      - {afterReads: 2, set: {gpu: 0, lost: true}}
      - {afterReads: 6, set: {gpu: 0, lost: false}}

Field names follow the agent's annotation (camelCase). Every mistake is one `FakeNvmlError`
line naming the file and the field. Tests can also drive it directly (`inject_xid`,
`update`, `fail_reads`), through the same code the script uses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from scheduler.agent.nvml_source import NvmlError, NvmlUnavailable
from scheduler.agent.proc import ProcessOwner
from scheduler.agent.readings import (
    ComputeMode,
    Event,
    GpuProcess,
    GpuReading,
    HealthCounters,
    MigDevice,
    NodeReading,
    NvLink,
    Telemetry,
    XidEvent,
)

_REMOTE_TYPES = ("gpu", "switch", "cpu", "")
_TOP_KEYS = {"driverVersion", "cudaVersion", "mpsControlDaemon", "openError", "gpus", "script"}
_GPU_KEYS = {"index", "uuid", "name", "memoryMiB", "pciBusId", "numaNode", "computeMode", "migEnabled",
             "migDevices", "nvlinks", "processes", "ecc", "retiredPagesPending", "remappedRows", "telemetry",
             "lost"}


class FakeNvmlError(ValueError):
    """The YAML does not describe a node; the message names the field."""


class FakeNvml:
    """`NvmlSource` over a YAML description. Not thread-safe (the agent's loop is single-threaded)."""

    def __init__(self, spec: Mapping[str, Any], *, where: str = "fake NVML",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not isinstance(spec, Mapping):
            raise FakeNvmlError(f"{where}: expected a mapping at the top level")
        self.where = where
        self._sleep = sleep
        _known_keys(spec, _TOP_KEYS, where)
        self.driver_version = str(spec.get("driverVersion", "550.54.15"))
        self.cuda_version = str(spec.get("cudaVersion", "12.4"))
        self.mps_daemon = _bool(spec, "mpsControlDaemon", where, False)
        self._open_error = spec.get("openError")
        raw_gpus = spec.get("gpus")
        if not isinstance(raw_gpus, list) or not raw_gpus:
            raise FakeNvmlError(f"{where}: 'gpus' must be a non-empty list")
        self._owners: dict[int, ProcessOwner] = {}
        self._raw: list[dict[str, Any]] = []
        for i, raw in enumerate(raw_gpus):
            if not isinstance(raw, Mapping):
                raise FakeNvmlError(f"{where}: gpus[{i}]: expected a mapping")
            self._raw.append(copy.deepcopy(dict(raw)))
        self._gpus = [self._parse_gpu(raw, f"{where}: gpus[{i}]") for i, raw in enumerate(self._raw)]
        indices = [g.index for g in self._gpus]
        if sorted(indices) != list(range(len(indices))):
            raise FakeNvmlError(f"{where}: GPU indices must be 0..{len(indices) - 1}, got {indices}")
        uuids = [g.uuid for g in self._gpus]
        if len(set(uuids)) != len(uuids):
            raise FakeNvmlError(f"{where}: duplicate GPU UUIDs")
        self._script = self._parse_script(spec.get("script") or [])
        self._events: list[Event] = []
        self._failures: list[str] = []
        self._open_failures: list[str] = []
        self.reads = 0
        self.is_open = False

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> FakeNvml:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise FakeNvmlError(f"cannot read fake NVML file {path}: {e.strerror}") from None
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" line {mark.line + 1}" if mark is not None else ""
            raise FakeNvmlError(f"{path}:{at} not valid YAML ({getattr(e, 'problem', e)})") from None
        return cls(spec, where=str(path), **kwargs)

    # -- NvmlSource -----------------------------------------------------------------------

    def open(self) -> None:
        if self._open_error:
            raise NvmlUnavailable(str(self._open_error))
        if self._open_failures:
            raise NvmlUnavailable(self._open_failures.pop(0))
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def read(self) -> NodeReading:
        if not self.is_open:
            raise NvmlError("NVML is not open")
        if self._failures:
            raise NvmlError(self._failures.pop(0))
        reading = NodeReading(driver_version=self.driver_version, cuda_version=self.cuda_version,
                              gpus=tuple(_as_read(g) for g in sorted(self._gpus, key=lambda g: g.index)))
        self.reads += 1
        self._run_script()
        return reading

    def wait_events(self, timeout_s: float) -> list[Event]:
        if not self.is_open or not self._events:
            self._sleep(max(0.0, timeout_s))
            return []
        events, self._events = self._events, []
        return events

    # -- driving it -----------------------------------------------------------------------

    def inject_xid(self, gpu: int, xid: int, *, gpu_instance: int | None = None,
                   compute_instance: int | None = None) -> None:
        """Queue an XID on GPU `gpu` (by index) for the next `wait_events`."""
        self._events.append(XidEvent(uuid=self._by_index(gpu, "xid").uuid, xid=xid,
                                     gpu_instance=gpu_instance, compute_instance=compute_instance))

    def update(self, gpu: int, **fields: Any) -> None:
        """Change GPU `gpu`'s description (same field names as the YAML), validated the same way."""
        self._by_index(gpu, "set")
        raw = copy.deepcopy(self._raw[gpu])
        raw.update(fields)
        parsed = self._parse_gpu(raw, f"{self.where}: set gpu {gpu}")
        if parsed.index != gpu:
            raise FakeNvmlError(f"{self.where}: set gpu {gpu}: the index cannot change")
        self._raw[gpu], self._gpus[gpu] = raw, parsed

    def fail_reads(self, count: int, message: str = "NVML: Unknown Error") -> None:
        """The next `count` reads fail as a driver hiccup would."""
        self._failures.extend([message] * count)

    def fail_opens(self, count: int, message: str = "the NVIDIA driver is installed but not loaded") -> None:
        """The next `count` opens fail, as while the driver (re)loads."""
        self._open_failures.extend([message] * count)

    def _by_index(self, gpu: Any, what: str) -> GpuReading:
        if not isinstance(gpu, int) or not 0 <= gpu < len(self._gpus):
            raise FakeNvmlError(f"{self.where}: {what}: no GPU with index {gpu!r}")
        return self._gpus[gpu]

    def _run_script(self) -> None:
        due = [step for step in self._script if step[0] <= self.reads]
        self._script = [step for step in self._script if step[0] > self.reads]
        for _, action in due:
            action()

    def _parse_script(self, steps: Any) -> list[tuple[int, Callable[[], None]]]:
        if not isinstance(steps, list):
            raise FakeNvmlError(f"{self.where}: 'script' must be a list")
        parsed = []
        for i, step in enumerate(steps):
            where = f"{self.where}: script[{i}]"
            if not isinstance(step, Mapping):
                raise FakeNvmlError(f"{where}: expected a mapping")
            after = _int(step, "afterReads", where, None)
            if after < 1:
                raise FakeNvmlError(f"{where}: 'afterReads' must be at least 1")
            if "xid" in step:
                x = step["xid"]
                if not isinstance(x, Mapping):
                    raise FakeNvmlError(f"{where}: 'xid' must be a mapping {{gpu, xid}}")
                gpu, xid = _int(x, "gpu", where, None), _int(x, "xid", where, None)
                gi, ci = x.get("gpuInstance"), x.get("computeInstance")
                self._by_index(gpu, f"script[{i}] xid")
                parsed.append((after, lambda g=gpu, n=xid, a=gi, b=ci: self.inject_xid(
                    g, n, gpu_instance=a, compute_instance=b)))
            elif "set" in step:
                s = step["set"]
                if not isinstance(s, Mapping) or "gpu" not in s:
                    raise FakeNvmlError(f"{where}: 'set' must be a mapping with 'gpu'")
                fields = {k: v for k, v in s.items() if k != "gpu"}
                self._by_index(s["gpu"], f"script[{i}] set")
                parsed.append((after, lambda g=s["gpu"], f=fields: self.update(g, **f)))
            else:
                raise FakeNvmlError(f"{where}: expected 'xid' or 'set'")
        return parsed

    # -- parsing one GPU ------------------------------------------------------------------

    def _parse_gpu(self, raw: Mapping[str, Any], where: str) -> GpuReading:
        _known_keys(raw, _GPU_KEYS, where)
        uuid, name = raw.get("uuid"), raw.get("name")
        if not isinstance(uuid, str) or not uuid:
            raise FakeNvmlError(f"{where}: 'uuid' must be a non-empty string")
        if not isinstance(name, str) or not name:
            raise FakeNvmlError(f"{where}: 'name' must be a non-empty string (e.g. 'NVIDIA A100-SXM4-80GB')")
        memory = _int(raw, "memoryMiB", where, None)
        if memory <= 0:
            raise FakeNvmlError(f"{where}: 'memoryMiB' must be positive")
        try:
            mode = ComputeMode.parse(str(raw.get("computeMode", "default")))
        except ValueError as e:
            raise FakeNvmlError(f"{where}: {e}") from None
        ecc = _mapping(raw, "ecc", where)
        rows = _mapping(raw, "remappedRows", where)
        tele = _mapping(raw, "telemetry", where)
        power = tele.get("powerW")
        return GpuReading(
            index=_int(raw, "index", where, None), uuid=uuid, name=name, memory_total_mib=memory,
            pci_bus_id=str(raw.get("pciBusId", "")), numa_node=_int(raw, "numaNode", where, -1),
            compute_mode=mode, mig_enabled=_bool(raw, "migEnabled", where, False),
            mig_devices=tuple(self._mig(m, f"{where}: migDevices[{i}]")
                              for i, m in enumerate(_list(raw, "migDevices", where))),
            nvlinks=tuple(self._link(link, f"{where}: nvlinks[{i}]")
                          for i, link in enumerate(_list(raw, "nvlinks", where))),
            processes=tuple(self._process(p, f"{where}: processes[{i}]")
                            for i, p in enumerate(_mappings(raw, "processes", where))),
            counters=HealthCounters(
                ecc_uncorrected_volatile=_int(ecc, "uncorrectedVolatile", f"{where}: ecc", 0),
                retired_pages_pending=_bool(raw, "retiredPagesPending", where, False),
                remapped_rows_pending=_bool(rows, "pending", f"{where}: remappedRows", False),
                remapping_failed=_bool(rows, "failed", f"{where}: remappedRows", False)),
            telemetry=Telemetry(
                memory_used_mib=_int(tele, "memoryUsedMiB", f"{where}: telemetry",
                                     sum(p.get("usedMiB", 0) for p in _mappings(raw, "processes", where))),
                utilization_pct=_int(tele, "utilizationPct", f"{where}: telemetry", 0),
                temperature_c=_int(tele, "temperatureC", f"{where}: telemetry", 35),
                power_mw=None if power is None else int(float(power) * 1000)),
            lost=_bool(raw, "lost", where, False),
        )

    def _process(self, raw: Mapping[str, Any], where: str) -> GpuProcess:
        _known_keys(raw, {"pid", "usedMiB", "podUid", "command"}, where)
        pid = _int(raw, "pid", where, None)
        self._owners[pid] = ProcessOwner(pod_uid=str(raw.get("podUid", "")), command=str(raw.get("command", "")))
        return GpuProcess(pid=pid, used_memory_mib=_int(raw, "usedMiB", where, 0))

    def owner(self, pid: int) -> ProcessOwner:
        """`proc.ProcessResolver` for the fake: who runs `pid`, from `podUid`/`command` in the YAML."""
        return self._owners.get(pid, ProcessOwner())

    @staticmethod
    def _mig(raw: Any, where: str) -> MigDevice:
        if not isinstance(raw, Mapping):
            raise FakeNvmlError(f"{where}: expected a mapping")
        uuid = raw.get("uuid")
        if not isinstance(uuid, str) or not uuid.startswith("MIG-"):
            raise FakeNvmlError(f"{where}: 'uuid' must be a MIG UUID (MIG-...)")
        return MigDevice(uuid=uuid, profile=str(raw.get("profile", "")), memory_mib=_int(raw, "memoryMiB", where, 0),
                         gpu_instance=_int(raw, "gpuInstance", where, 0),
                         compute_instance=_int(raw, "computeInstance", where, 0))

    @staticmethod
    def _link(raw: Any, where: str) -> NvLink:
        if not isinstance(raw, Mapping):
            raise FakeNvmlError(f"{where}: expected a mapping")
        kind = str(raw.get("remoteType", ""))
        if kind not in _REMOTE_TYPES:
            raise FakeNvmlError(f"{where}: 'remoteType' must be gpu, switch or cpu, got {kind!r}")
        return NvLink(link=_int(raw, "link", where, None), active=_bool(raw, "active", where, True),
                      remote_bus_id=str(raw.get("remote", "")), remote_kind=kind)


def _as_read(gpu: GpuReading) -> GpuReading:
    """A lost GPU answers nothing: keep only what the real reader remembers from before."""
    if not gpu.lost:
        return gpu
    return GpuReading(index=gpu.index, uuid=gpu.uuid, name=gpu.name, memory_total_mib=gpu.memory_total_mib,
                      pci_bus_id=gpu.pci_bus_id, numa_node=gpu.numa_node, lost=True)


def _int(raw: Mapping[str, Any], key: str, where: str, default: int | None) -> int:
    value = raw.get(key, default)
    if value is None:
        raise FakeNvmlError(f"{where}: {key!r} is required")
    if not isinstance(value, int) or isinstance(value, bool):
        raise FakeNvmlError(f"{where}: {key!r} must be an integer, got {value!r}")
    return value


def _bool(raw: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise FakeNvmlError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value


def _list(raw: Mapping[str, Any], key: str, where: str) -> list:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise FakeNvmlError(f"{where}: {key!r} must be a list")
    return value


def _mappings(raw: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    items = _list(raw, key, where)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise FakeNvmlError(f"{where}: {key}[{i}]: expected a mapping")
    return items


def _known_keys(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    """Typos fail loudly (`memoryMib`); keys starting with `x-` are free (YAML anchors live there)."""
    unknown = sorted(str(k) for k in raw if k not in known and not str(k).startswith("x-"))
    if unknown:
        raise FakeNvmlError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _mapping(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise FakeNvmlError(f"{where}: {key!r} must be a mapping")
    return value
