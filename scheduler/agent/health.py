"""GPU health: which conditions make a GPU unhealthy, and when it comes back.

Everything that decides health lives here, and nothing else does: pure, no NVML, no clock
(every call takes `now`, monotonic seconds).

The rule: a GPU is healthy iff it has no active condition. Conditions come from two sources.

1. Counters, re-read on every pass (`observe_reading`); a condition is active exactly while
   the last reading shows it, so it clears as soon as the GPU is reset or repaired:
   | condition              | active while                                             |
   | lost                   | NVML answers GPU_IS_LOST (the GPU fell off the bus)       |
   | ecc-uncorrected        | volatile uncorrectable ECC count > 0 (since last reset)  |
   | retired-pages-pending  | a page retirement waits for a reset (pre-Ampere)          |
   | remap-pending          | a row remap waits for a reset (Ampere and later)         |
   | remap-failed           | row remapping ran out of spare rows (needs servicing)    |
2. XID events (`observe_event`) from the configured set: an event is a moment, not a state,
   so an XID condition stays active for `xid_hold` after its last occurrence and then
   clears. The XIDs NVIDIA lists as needing a reset mostly leave a counter behind (48/94/95:
   uncorrectable ECC; 63/64: remapping; 79: lost), so in practice a GPU that really needs a
   reset stays out until the counters clear, i.e. until it is reset; the hold covers the
   XIDs that leave nothing to read (74 NVLink, 92 high single-bit rate). This is the
   difference from the NVIDIA device plugin, which marks a device unhealthy and never back.

Reasons are stable text (no timestamps or ages), so an unchanged state never rewrites the
node annotation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from scheduler.agent.readings import GpuReading, XidEvent

DEFAULT_UNHEALTHY_XIDS = frozenset({48, 63, 64, 74, 79, 92, 94, 95})
"""The XIDs NVIDIA's XID catalogue says need a GPU reset (or worse)."""

XID_MEANINGS: Mapping[int, str] = MappingProxyType({
    13: "graphics engine exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "preemptive cleanup",
    48: "double-bit ECC error",
    61: "internal micro-controller breakpoint",
    62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping recorded",
    64: "ECC page retirement or row remapper failure",
    68: "video processor exception",
    74: "NVLink error",
    79: "GPU fell off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
})

DEFAULT_XID_HOLD_S = 600.0


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """Which XIDs mark a GPU unhealthy, and for how long after the last one."""

    unhealthy_xids: frozenset[int] = DEFAULT_UNHEALTHY_XIDS
    xid_hold_s: float = DEFAULT_XID_HOLD_S

    def __post_init__(self) -> None:
        if self.xid_hold_s <= 0:
            raise ValueError("the XID hold must be positive (an XID that never clears is what we avoid)")
        if any(x <= 0 for x in self.unhealthy_xids):
            raise ValueError("XIDs are positive integers")


def parse_xid_list(text: str) -> frozenset[int]:
    """`48,63,79` or `default,13` (the defaults plus 13). Raises ValueError naming the bad term."""
    xids: set[int] = set()
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        if term.lower() == "default":
            xids |= DEFAULT_UNHEALTHY_XIDS
            continue
        if not term.isdigit() or int(term) <= 0:
            raise ValueError(f"not an XID: {term!r} (expected positive integers or 'default')")
        xids.add(int(term))
    if not xids:
        raise ValueError("empty XID list")
    return frozenset(xids)


# -- counter conditions: the table is the rule -------------------------------------------

_COUNTER_CONDITIONS: tuple[tuple[str, Callable[[GpuReading], bool], Callable[[GpuReading], str]], ...] = (
    ("lost", lambda g: g.lost, lambda g: "GPU fell off the bus (NVML: GPU is lost)"),
    ("ecc-uncorrected", lambda g: (g.counters.ecc_uncorrected_volatile or 0) > 0,
     lambda g: f"uncorrectable ECC errors since the last reset: {g.counters.ecc_uncorrected_volatile}"),
    ("retired-pages-pending", lambda g: bool(g.counters.retired_pages_pending),
     lambda g: "page retirement pending a GPU reset"),
    ("remap-pending", lambda g: bool(g.counters.remapped_rows_pending),
     lambda g: "row remapping pending a GPU reset"),
    ("remap-failed", lambda g: bool(g.counters.remapping_failed),
     lambda g: "row remapping failed (no spare rows left; the GPU needs servicing)"),
)
COUNTER_CONDITION_KINDS = tuple(kind for kind, _, _ in _COUNTER_CONDITIONS)


@dataclass(frozen=True, slots=True, order=True)
class Condition:
    """One active reason a GPU is unhealthy. `kind` is `xid-<n>` or one of the counter kinds."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class GpuHealth:
    conditions: tuple[Condition, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.conditions

    @property
    def reason(self) -> str:
        """`""` when healthy, else every active condition, in a fixed order, `; `-separated."""
        return "; ".join(c.text for c in self.conditions)


HEALTHY = GpuHealth()


@dataclass
class _GpuState:
    counter_conditions: tuple[Condition, ...] = ()
    xid_last_seen: dict[int, float] = field(default_factory=dict)
    xid_where: dict[int, str] = field(default_factory=dict)


class HealthTracker:
    """Per-GPU health, by UUID. Feed it readings and events; ask it at any moment."""

    def __init__(self, settings: HealthSettings = HealthSettings()) -> None:
        self.settings = settings
        self._gpus: dict[str, _GpuState] = {}

    def observe_reading(self, gpu: GpuReading) -> None:
        """Replace the GPU's counter conditions with what this reading shows."""
        state = self._gpus.setdefault(gpu.uuid, _GpuState())
        state.counter_conditions = tuple(Condition(kind, text(gpu))
                                         for kind, active, text in _COUNTER_CONDITIONS if active(gpu))

    def observe_event(self, event: XidEvent, now: float) -> bool:
        """Record an XID; True when it is one of the unhealthy set (the caller republishes)."""
        if event.xid not in self.settings.unhealthy_xids:
            return False
        state = self._gpus.setdefault(event.uuid, _GpuState())
        state.xid_last_seen[event.xid] = now
        state.xid_where[event.xid] = (f" in MIG instance {event.gpu_instance}/{event.compute_instance}"
                                      if event.gpu_instance is not None else "")
        return True

    def health(self, uuid: str, now: float) -> GpuHealth:
        state = self._gpus.get(uuid)
        if state is None:
            return HEALTHY
        hold = self.settings.xid_hold_s
        for xid in [x for x, seen in state.xid_last_seen.items() if now - seen >= hold]:
            del state.xid_last_seen[xid]  # expired: forget it, so a restart of the hold needs a new XID
            state.xid_where.pop(xid, None)
        xids = tuple(Condition(f"xid-{xid}", f"XID {xid} ({XID_MEANINGS.get(xid, 'critical error')})"
                                             f"{state.xid_where.get(xid, '')}")
                     for xid in sorted(state.xid_last_seen))
        return GpuHealth(conditions=xids + state.counter_conditions)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop GPUs no longer on the node (after a reconfiguration), keeping `keep`."""
        wanted = set(keep)
        for uuid in [u for u in self._gpus if u not in wanted]:
            del self._gpus[uuid]
