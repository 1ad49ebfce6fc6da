"""Where GPU readings come from: the `NvmlSource` interface and the real pynvml reader.

The interface is what the agent's loop depends on; `fake_nvml.FakeNvml` implements it from
a YAML file for tests and demos. This is the only module of the project that imports
`pynvml` (an import-linter contract keeps it that way, outside `scheduler.agent`).

The real reader is a collector in the STYLE §7 sense: `read()` takes one full pass over
every GPU, `wait_events()` blocks on NVML's event set and is the loop's sleep, so an XID
is acted on within milliseconds instead of at the next poll.

Fields a GPU or driver does not support come back as None (see `readings`); only the
fields without which a GPU cannot be described at all (UUID, name, memory) fail a read.
A GPU that fell off the bus answers GPU_IS_LOST: it is reported `lost` under the UUID it
had when it was last seen, never dropped from the list (a silently shrinking GPU list
would look like a reconfiguration, not a failure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import pynvml

from scheduler.agent.readings import (
    ComputeMode,
    Event,
    GpuLostEvent,
    GpuProcess,
    GpuReading,
    HealthCounters,
    MigDevice,
    NodeReading,
    NvLink,
    Telemetry,
    XidEvent,
)

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_NO_INSTANCE = 0xFFFFFFFF
"""NVML's "not a MIG event" value for the GPU/compute instance ids of an event."""
DBE_XID = 48
"""A double-bit ECC event is XID 48 by another name; the health rules treat them alike."""


class NvmlError(Exception):
    """A reading failed as a whole. The message is one line, fit for a log and a CLI error."""

    reason = "nvml"
    """The `reason` label of `gpusched_node_agent_errors_total`."""


class NvmlUnavailable(NvmlError):
    """NVML cannot be used here at all: no driver, driver not loaded, no GPU."""

    reason = "nvml-unavailable"


class NvmlSource(Protocol):
    """A node's GPUs as the agent sees them.

    Contract: `open()` before anything else (raises `NvmlUnavailable`); `read()` may be
    called any number of times and returns GPUs in index order (raises `NvmlError`);
    `wait_events(t)` blocks at most `t` seconds and returns as soon as at least one event
    is there (all queued events at once); `close()` is idempotent and never raises.
    """

    def open(self) -> None: ...

    def read(self) -> NodeReading: ...

    def wait_events(self, timeout_s: float) -> list[Event]: ...

    def close(self) -> None: ...


def cuda_version_text(value: int) -> str:
    """NVML's CUDA version integer (12040) as `12.4`."""
    return f"{value // 1000}.{(value % 1000) // 10}"


_OPTIONAL_ERRORS = {pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION,
                    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_NOT_FOUND,
                    pynvml.NVML_ERROR_INVALID_ARGUMENT}


def _optional(fn: Callable, *args):
    """A field this GPU or driver may not have: None instead of an error. GPU_IS_LOST passes."""
    try:
        return fn(*args)
    except pynvml.NVMLError as e:
        if e.value in _OPTIONAL_ERRORS:
            return None
        raise


def _unavailable_message(e: pynvml.NVMLError) -> str:
    code = e.value
    if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return "no NVIDIA driver on this node (libnvidia-ml.so.1 not found)"
    if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "the NVIDIA driver is installed but not loaded (NVML: Driver Not Loaded)"
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return "no permission to use NVML (run privileged or with the NVIDIA container runtime)"
    if code == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return "NVML and the loaded NVIDIA kernel module differ in version (reboot or reload the driver)"
    return f"NVML failed to initialise: {e}"


class PynvmlSource:
    """The real thing, through nvidia-ml-py."""

    def __init__(self, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep
        self._open = False
        self._count = 0
        self._event_set = None
        self._last_seen: dict[int, GpuReading] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        if self._open:
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            raise NvmlUnavailable(_unavailable_message(e)) from None
        self._open = True
        try:
            self._count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:
            self.close()
            raise NvmlUnavailable(f"NVML cannot count the GPUs: {e}") from None
        if self._count == 0:
            self.close()
            raise NvmlUnavailable("NVML sees no NVIDIA GPU on this node")
        self._event_set = self._register_events()

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._event_set is not None:
            try:
                pynvml.nvmlEventSetFree(self._event_set)
            except pynvml.NVMLError as e:
                log.debug("freeing the NVML event set: %s", e)
            self._event_set = None
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as e:
            log.debug("NVML shutdown: %s", e)

    def _register_events(self):
        """XID and double-bit ECC events of every GPU that supports them.

        Single-bit ECC events are left out: they are corrected, frequent on large memories,
        and the volatile counters already tell the health rules what they need.
        """
        try:
            event_set = pynvml.nvmlEventSetCreate()
        except pynvml.NVMLError as e:
            log.warning("NVML events unavailable (%s): XIDs will not be seen, counters still are", e)
            return None
        wanted = pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError
        for index in range(self._count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                supported = _optional(pynvml.nvmlDeviceGetSupportedEventTypes, handle) or 0
                if wanted & supported:
                    pynvml.nvmlDeviceRegisterEvents(handle, wanted & supported, event_set)
                else:
                    log.warning("GPU %d reports no XID events; its health rests on counters only", index)
            except pynvml.NVMLError as e:
                log.warning("GPU %d: cannot register for XID events (%s)", index, e)
        return event_set

    # -- reading --------------------------------------------------------------------------

    def read(self) -> NodeReading:
        if not self._open:
            raise NvmlError("NVML is not open")
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            cuda = cuda_version_text(pynvml.nvmlSystemGetCudaDriverVersion())
            gpus = tuple(self._read_gpu(index) for index in range(self._count))
        except pynvml.NVMLError as e:
            raise NvmlError(f"NVML read failed: {e}") from None
        return NodeReading(driver_version=driver, cuda_version=cuda, gpus=gpus)

    def _read_gpu(self, index: int) -> GpuReading:
        try:
            reading = self._read_present_gpu(index)
        except pynvml.NVMLError_GpuIsLost:
            return self._lost(index)
        self._last_seen[index] = reading
        return reading

    def _lost(self, index: int) -> GpuReading:
        last = self._last_seen.get(index)
        if last is None:
            # Lost before it was ever read: no UUID is known. Still listed, so that the node
            # shows one more unhealthy GPU instead of one GPU fewer.
            return GpuReading(index=index, uuid=f"GPU-unknown-index-{index}", name="unknown",
                              memory_total_mib=1, lost=True)
        return GpuReading(index=index, uuid=last.uuid, name=last.name, memory_total_mib=last.memory_total_mib,
                          pci_bus_id=last.pci_bus_id, numa_node=last.numa_node, lost=True)

    def _read_present_gpu(self, index: int) -> GpuReading:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        pci = pynvml.nvmlDeviceGetPciInfo(handle)
        mode = _optional(pynvml.nvmlDeviceGetComputeMode, handle)
        mig = _optional(pynvml.nvmlDeviceGetMigMode, handle)
        mig_enabled = bool(mig) and mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE
        return GpuReading(
            index=index,
            uuid=pynvml.nvmlDeviceGetUUID(handle),
            name=pynvml.nvmlDeviceGetName(handle),
            memory_total_mib=int(memory.total) // MIB,
            pci_bus_id=_text(pci.busId),
            numa_node=_optional(pynvml.nvmlDeviceGetNumaNodeId, handle),
            compute_mode=ComputeMode.DEFAULT if mode is None else ComputeMode.from_nvml(mode),
            mig_enabled=mig_enabled,
            mig_devices=self._mig_devices(handle) if mig_enabled else (),
            nvlinks=self._nvlinks(handle),
            processes=self._processes(handle),
            counters=self._counters(handle),
            telemetry=self._telemetry(handle, int(memory.used) // MIB),
        )

    @staticmethod
    def _mig_devices(handle) -> tuple[MigDevice, ...]:
        devices = []
        for slot in range(_optional(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            mig = _optional(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            if mig is None:  # an empty slot: NOT_FOUND
                continue
            name = pynvml.nvmlDeviceGetName(mig)
            devices.append(MigDevice(
                uuid=pynvml.nvmlDeviceGetUUID(mig),
                # "NVIDIA A100-SXM4-80GB MIG 1g.10gb" -> "1g.10gb"
                profile=name.rsplit("MIG", 1)[-1].strip() if "MIG" in name else name,
                memory_mib=int(pynvml.nvmlDeviceGetMemoryInfo(mig).total) // MIB,
                gpu_instance=pynvml.nvmlDeviceGetGpuInstanceId(mig),
                compute_instance=pynvml.nvmlDeviceGetComputeInstanceId(mig),
            ))
        return tuple(devices)

    @staticmethod
    def _nvlinks(handle) -> tuple[NvLink, ...]:
        links = []
        for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
            state = _optional(pynvml.nvmlDeviceGetNvLinkState, handle, link)
            if state is None:  # no such link on this GPU (or no NVLink at all)
                continue
            remote = _optional(pynvml.nvmlDeviceGetNvLinkRemotePciInfo, handle, link) if state else None
            kind = _optional(pynvml.nvmlDeviceGetNvLinkRemoteDeviceType, handle, link) if state else None
            links.append(NvLink(link=link, active=bool(state),
                                remote_bus_id=_text(remote.busId) if remote is not None else "",
                                remote_kind=_REMOTE_KINDS.get(kind, "")))
        return tuple(links)

    @staticmethod
    def _processes(handle) -> tuple[GpuProcess, ...]:
        # Compute contexts, plus MPS clients (which hide behind the MPS server otherwise).
        found: dict[int, GpuProcess] = {}
        for getter in (pynvml.nvmlDeviceGetComputeRunningProcesses, pynvml.nvmlDeviceGetMPSComputeRunningProcesses):
            for proc in _optional(getter, handle) or ():
                used = proc.usedGpuMemory
                found.setdefault(int(proc.pid), GpuProcess(pid=int(proc.pid),
                                                           used_memory_mib=None if used is None else int(used) // MIB))
        return tuple(sorted(found.values(), key=lambda p: p.pid))

    @staticmethod
    def _counters(handle) -> HealthCounters:
        ecc = _optional(pynvml.nvmlDeviceGetTotalEccErrors, handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                        pynvml.NVML_VOLATILE_ECC)
        pending = _optional(pynvml.nvmlDeviceGetRetiredPagesPendingStatus, handle)
        rows = _optional(pynvml.nvmlDeviceGetRemappedRows, handle)  # (correctable, uncorrectable, pending, failed)
        return HealthCounters(
            ecc_uncorrected_volatile=None if ecc is None else int(ecc),
            retired_pages_pending=None if pending is None else bool(pending),
            remapped_rows_pending=None if rows is None else bool(rows[2]),
            remapping_failed=None if rows is None else bool(rows[3]),
        )

    @staticmethod
    def _telemetry(handle, used_mib: int) -> Telemetry:
        util = _optional(pynvml.nvmlDeviceGetUtilizationRates, handle)
        return Telemetry(
            memory_used_mib=used_mib,
            utilization_pct=None if util is None else int(util.gpu),
            temperature_c=_optional(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
            power_mw=_optional(pynvml.nvmlDeviceGetPowerUsage, handle),
        )

    # -- events ---------------------------------------------------------------------------

    def wait_events(self, timeout_s: float) -> list[Event]:
        if not self._open or self._event_set is None:
            self._sleep(max(0.0, timeout_s))
            return []
        events: list[Event] = []
        wait_ms = max(0, int(timeout_s * 1000))
        while True:
            try:
                data = pynvml.nvmlEventSetWait_v2(self._event_set, wait_ms)
            except pynvml.NVMLError_Timeout:
                return events
            except pynvml.NVMLError_GpuIsLost:
                events.append(GpuLostEvent())
                return events
            except pynvml.NVMLError as e:
                raise NvmlError(f"waiting for NVML events failed: {e}") from None
            events.append(self._event(data))
            wait_ms = 0  # drain whatever else is queued, then return

    @staticmethod
    def _event(data) -> Event:
        try:
            uuid = pynvml.nvmlDeviceGetUUID(data.device)
        except pynvml.NVMLError:
            return GpuLostEvent()
        xid = DBE_XID if data.eventType == pynvml.nvmlEventTypeDoubleBitEccError else int(data.eventData)
        gi, ci = int(data.gpuInstanceId), int(data.computeInstanceId)
        return XidEvent(uuid=uuid, xid=xid, gpu_instance=None if gi == _NO_INSTANCE else gi,
                        compute_instance=None if ci == _NO_INSTANCE else ci)


_REMOTE_KINDS = {pynvml.NVML_NVLINK_DEVICE_TYPE_GPU: "gpu", pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH: "switch",
                 pynvml.NVML_NVLINK_DEVICE_TYPE_IBMNPU: "cpu"}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
