"""What one look at a node's GPUs returns, as plain frozen values.

Both NVML sources (the real pynvml reader and the YAML fake) produce exactly these, so
everything downstream (health, inventory, exporter, reconciliation) is tested once against
either. No NVML types, handles or ctypes structures leak past this module's types.

A value NVML cannot give on this GPU (not supported, no permission) is None, not zero:
"no ECC counter" and "zero ECC errors" are different statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ComputeMode(Enum):
    """nvmlComputeMode_t, by name (the values NVML documents, 0..3)."""

    DEFAULT = "default"
    EXCLUSIVE_THREAD = "exclusive-thread"
    PROHIBITED = "prohibited"
    EXCLUSIVE_PROCESS = "exclusive-process"

    @classmethod
    def from_nvml(cls, value: int) -> ComputeMode:
        return _BY_NVML.get(value, cls.DEFAULT)

    @classmethod
    def parse(cls, text: str) -> ComputeMode:
        try:
            return cls(text.strip().lower().replace("_", "-"))
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown compute mode {text!r} (expected one of {names})") from None


_BY_NVML = {0: ComputeMode.DEFAULT, 1: ComputeMode.EXCLUSIVE_THREAD, 2: ComputeMode.PROHIBITED,
            3: ComputeMode.EXCLUSIVE_PROCESS}


@dataclass(frozen=True, slots=True)
class MigDevice:
    """One MIG device (a GPU instance + compute instance) carved out of a GPU."""

    uuid: str
    profile: str
    """e.g. `1g.10gb` (the MIG device name NVML reports, vendor prefix dropped)."""
    memory_mib: int
    gpu_instance: int
    compute_instance: int


@dataclass(frozen=True, slots=True)
class NvLink:
    """One NVLink of a GPU. `remote_bus_id` is the PCI bus id at the far end, as NVML reports it.

    `remote_kind` is what NVML says sits there: `gpu`, `switch` (an NVSwitch: DGX/HGX boards
    connect every GPU through them), `cpu` (IBM NPU), or "" when the driver cannot tell.
    """

    link: int
    active: bool
    remote_bus_id: str
    remote_kind: str = ""


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process holding a context on a GPU. `pid` is in the host PID namespace (NVML's view)."""

    pid: int
    used_memory_mib: int | None = None


@dataclass(frozen=True, slots=True)
class HealthCounters:
    """The counters health decisions are made from, read on every pass.

    Volatile ECC counters reset when the GPU is reset or the driver reloads, so a non-zero
    `ecc_uncorrected_volatile` means "an uncorrectable error since the last reset".
    """

    ecc_uncorrected_volatile: int | None = None
    retired_pages_pending: bool | None = None
    """Pre-Ampere page retirement: a retirement waits for the next reset."""
    remapped_rows_pending: bool | None = None
    """Ampere and later row remapping: a remap waits for the next reset."""
    remapping_failed: bool | None = None
    """Row remapping ran out of spare rows: the GPU needs servicing, not just a reset."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What the exporter shows and nothing decides on."""

    memory_used_mib: int | None = None
    utilization_pct: int | None = None
    temperature_c: int | None = None
    power_mw: int | None = None


@dataclass(frozen=True, slots=True)
class GpuReading:
    """Everything read about one GPU in one pass.

    `lost` is True when NVML answered GPU_IS_LOST (the GPU fell off the bus): then only
    `index` (and whatever was known before) is meaningful.
    """

    index: int
    uuid: str
    name: str
    """The product name as NVML reports it (`NVIDIA A100-SXM4-80GB`), not yet normalised."""
    memory_total_mib: int
    pci_bus_id: str = ""
    numa_node: int | None = None
    compute_mode: ComputeMode = ComputeMode.DEFAULT
    mig_enabled: bool = False
    mig_devices: tuple[MigDevice, ...] = ()
    nvlinks: tuple[NvLink, ...] = ()
    processes: tuple[GpuProcess, ...] = ()
    counters: HealthCounters = field(default_factory=HealthCounters)
    telemetry: Telemetry = field(default_factory=Telemetry)
    lost: bool = False


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One pass over all GPUs of the node, in index order."""

    driver_version: str
    cuda_version: str
    """`12.4`: the highest CUDA version the driver supports (nvmlSystemGetCudaDriverVersion)."""
    gpus: tuple[GpuReading, ...]


@dataclass(frozen=True, slots=True)
class XidEvent:
    """An XID critical error NVML reported for one GPU (by UUID).

    MIG: `gpu_instance`/`compute_instance` name the slice when the error is contained to one;
    None means the whole GPU.
    """

    uuid: str
    xid: int
    gpu_instance: int | None = None
    compute_instance: int | None = None


@dataclass(frozen=True, slots=True)
class GpuLostEvent:
    """NVML's event wait itself failed with GPU_IS_LOST: some GPU fell off the bus."""

    uuid: str = ""
    """Empty when NVML could not say which (then the next read finds it)."""


Event = XidEvent | GpuLostEvent
