"""The real reader's own logic (field mapping, optional fields, a GPU falling off the bus, events)
over a stand-in for libnvidia-ml at pynvml's function level. What NVML itself answers is checked
on a real GPU by test_real_gpu.py; this covers what the reader does with the answers, here and in CI."""

from __future__ import annotations

from types import SimpleNamespace

import pynvml
import pytest

from scheduler.agent.nvml_source import NvmlError, NvmlUnavailable, PynvmlSource
from scheduler.agent.readings import ComputeMode, GpuLostEvent, XidEvent

MIB = 1024 * 1024


def _err(code):
    return pynvml.NVMLError(code)


class Driver:
    """Two GPUs: 0 an A100 with MIG on and an NVLink to GPU 1; 1 an A100 without ECC counters."""

    def __init__(self) -> None:
        self.lost: set[int] = set()
        self.events: list = []
        self.init_error: int | None = None
        self.registered: list[tuple[int, int]] = []

    def install(self, monkeypatch) -> None:
        for name in dir(self):
            if name.startswith("nvml"):
                monkeypatch.setattr(pynvml, name, getattr(self, name))

    def _index(self, handle):
        index = handle.index
        if index in self.lost:
            raise _err(pynvml.NVML_ERROR_GPU_IS_LOST)
        return index

    def nvmlInit(self):
        if self.init_error is not None:
            raise _err(self.init_error)

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self):
        return 12040

    def nvmlDeviceGetHandleByIndex(self, index):
        return SimpleNamespace(index=index, mig=None)

    def nvmlDeviceGetUUID(self, handle):
        if handle.mig is not None:
            return f"MIG-{handle.mig}"
        return f"GPU-{self._index(handle)}"

    def nvmlDeviceGetName(self, handle):
        return "NVIDIA A100-SXM4-80GB MIG 3g.40gb" if handle.mig is not None else "NVIDIA A100-SXM4-80GB"

    def nvmlDeviceGetMemoryInfo(self, handle):
        if handle.mig is not None:
            return SimpleNamespace(total=40192 * MIB, used=0)
        self._index(handle)
        return SimpleNamespace(total=81920 * MIB, used=1024 * MIB)

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=f"00000000:{0x10 + self._index(handle):02X}:00.0".encode())

    def nvmlDeviceGetNumaNodeId(self, handle):
        raise _err(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)  # an older driver

    def nvmlDeviceGetComputeMode(self, handle):
        return 3 if self._index(handle) == 0 else 0

    def nvmlDeviceGetMigMode(self, handle):
        return [1, 1] if self._index(handle) == 0 else [0, 0]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, slot):
        if slot >= 2:
            raise _err(pynvml.NVML_ERROR_NOT_FOUND)
        return SimpleNamespace(index=handle.index, mig=slot)

    def nvmlDeviceGetGpuInstanceId(self, mig):
        return mig.mig + 1

    def nvmlDeviceGetComputeInstanceId(self, mig):
        return 0

    def nvmlDeviceGetNvLinkState(self, handle, link):
        if link >= 2:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return 1 if link == 0 else 0

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle, link):
        other = 1 - self._index(handle)
        return SimpleNamespace(busId=f"00000000:{0x10 + other:02X}:00.0")

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle, link):
        return pynvml.NVML_NVLINK_DEVICE_TYPE_GPU

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=100 + self._index(handle), usedGpuMemory=512 * MIB)]

    def nvmlDeviceGetMPSComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=200, usedGpuMemory=None)] if self._index(handle) == 0 else []

    def nvmlDeviceGetTotalEccErrors(self, handle, error_type, counter_type):
        if self._index(handle) == 1:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 2

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle):
        raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)  # Ampere: row remapping instead

    def nvmlDeviceGetRemappedRows(self, handle):
        return (0, 1, 1, 0)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=42, memory=10)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 55

    def nvmlDeviceGetPowerUsage(self, handle):
        return 250_000

    def nvmlEventSetCreate(self):
        return "event-set"

    def nvmlEventSetFree(self, event_set):
        pass

    def nvmlDeviceGetSupportedEventTypes(self, handle):
        return pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError

    def nvmlDeviceRegisterEvents(self, handle, mask, event_set):
        self.registered.append((handle.index, mask))

    def nvmlEventSetWait_v2(self, event_set, timeout_ms):
        if not self.events:
            raise _err(pynvml.NVML_ERROR_TIMEOUT)
        event = self.events.pop(0)
        if isinstance(event, int):
            raise _err(event)
        return event


@pytest.fixture
def driver(monkeypatch):
    d = Driver()
    d.install(monkeypatch)
    return d


def test_a_pass_maps_every_field(driver):
    source = PynvmlSource()
    source.open()
    reading = source.read()
    assert (reading.driver_version, reading.cuda_version) == ("550.54.15", "12.4")
    first, second = reading.gpus
    assert (first.index, first.uuid, first.name, first.memory_total_mib) == (0, "GPU-0", "NVIDIA A100-SXM4-80GB", 81920)
    assert first.pci_bus_id == "00000000:10:00.0" and first.numa_node is None
    assert first.compute_mode is ComputeMode.EXCLUSIVE_PROCESS and second.compute_mode is ComputeMode.DEFAULT
    assert first.mig_enabled and not second.mig_enabled
    assert [(m.uuid, m.profile, m.memory_mib, m.gpu_instance) for m in first.mig_devices] == [
        ("MIG-0", "3g.40gb", 40192, 1), ("MIG-1", "3g.40gb", 40192, 2)]
    assert [(link.link, link.active, link.remote_bus_id, link.remote_kind) for link in first.nvlinks] == [
        (0, True, "00000000:11:00.0", "gpu"), (1, False, "", "")]
    assert [(p.pid, p.used_memory_mib) for p in first.processes] == [(100, 512), (200, None)]
    assert first.counters.ecc_uncorrected_volatile == 2 and second.counters.ecc_uncorrected_volatile is None
    assert first.counters.retired_pages_pending is None
    assert first.counters.remapped_rows_pending is True and first.counters.remapping_failed is False
    assert (first.telemetry.memory_used_mib, first.telemetry.utilization_pct, first.telemetry.temperature_c,
            first.telemetry.power_mw) == (1024, 42, 55, 250_000)
    assert driver.registered == [(0, pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError),
                                 (1, pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError)]


def test_a_gpu_that_falls_off_the_bus_keeps_its_place_and_uuid(driver):
    source = PynvmlSource()
    source.open()
    source.read()
    driver.lost.add(1)
    lost = source.read().gpus[1]
    assert lost.lost and lost.uuid == "GPU-1" and lost.memory_total_mib == 81920 and lost.processes == ()
    driver.lost.clear()
    assert not source.read().gpus[1].lost


def test_lost_before_first_seen_is_still_listed(driver):
    driver.lost.add(0)
    source = PynvmlSource()
    source.open()
    gpus = source.read().gpus
    assert len(gpus) == 2 and gpus[0].lost and gpus[0].uuid == "GPU-unknown-index-0"


def test_events(driver):
    source = PynvmlSource(sleep=lambda s: pytest.fail("must wait on the event set, not sleep"))
    source.open()
    handle = SimpleNamespace(index=1, mig=None)
    driver.events = [
        SimpleNamespace(device=handle, eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=79,
                        gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF),
        SimpleNamespace(device=handle, eventType=pynvml.nvmlEventTypeDoubleBitEccError, eventData=0,
                        gpuInstanceId=2, computeInstanceId=0),
    ]
    assert source.wait_events(5) == [XidEvent("GPU-1", 79), XidEvent("GPU-1", 48, gpu_instance=2, compute_instance=0)]
    assert source.wait_events(5) == []
    driver.events = [pynvml.NVML_ERROR_GPU_IS_LOST]
    assert source.wait_events(5) == [GpuLostEvent()]
    driver.events = [pynvml.NVML_ERROR_UNKNOWN]
    with pytest.raises(NvmlError, match="waiting for NVML events failed"):
        source.wait_events(5)


@pytest.mark.parametrize(("code", "message"), [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver on this node (libnvidia-ml.so.1 not found)"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "the NVIDIA driver is installed but not loaded"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no permission to use NVML"),
    (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "NVML and the loaded NVIDIA kernel module differ in version"),
])
def test_init_failures_say_what_to_do(driver, code, message):
    driver.init_error = code
    with pytest.raises(NvmlUnavailable) as err:
        PynvmlSource().open()
    assert str(err.value).startswith(message)


def test_a_failing_read_is_one_nvml_error(driver, monkeypatch):
    source = PynvmlSource()
    source.open()
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: (_ for _ in ()).throw(_err(999)))
    with pytest.raises(NvmlError, match=r"^NVML read failed"):
        source.read()
