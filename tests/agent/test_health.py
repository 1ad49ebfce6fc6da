"""GPU health: a GPU is healthy iff no condition is active, and it comes back when they clear."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.agent.health import (
    DEFAULT_UNHEALTHY_XIDS,
    HealthSettings,
    HealthTracker,
    parse_xid_list,
)
from scheduler.agent.readings import GpuReading, HealthCounters, XidEvent

UUID = "GPU-0"
HOLD = 600.0


def reading(*, lost=False, ecc=0, retired=False, remap=False, failed=False):
    return GpuReading(index=0, uuid=UUID, name="NVIDIA A100-SXM4-80GB", memory_total_mib=81920, lost=lost,
                      counters=HealthCounters(ecc_uncorrected_volatile=ecc, retired_pages_pending=retired,
                                              remapped_rows_pending=remap, remapping_failed=failed))


def test_the_default_set_is_nvidias_reset_list():
    assert {48, 63, 64, 74, 79, 92, 94, 95} == DEFAULT_UNHEALTHY_XIDS


def test_xid_79_makes_the_gpu_unhealthy_then_it_comes_back_after_the_hold():
    tracker = HealthTracker(HealthSettings(xid_hold_s=HOLD))
    tracker.observe_reading(reading())
    assert tracker.health(UUID, now=0).healthy
    assert tracker.observe_event(XidEvent(UUID, 79), now=10) is True
    verdict = tracker.health(UUID, now=11)
    assert not verdict.healthy
    assert verdict.reason == "XID 79 (GPU fell off the bus)"
    assert not tracker.health(UUID, now=10 + HOLD - 1).healthy
    assert tracker.health(UUID, now=10 + HOLD).healthy


def test_a_repeated_xid_restarts_the_hold():
    tracker = HealthTracker(HealthSettings(xid_hold_s=HOLD))
    tracker.observe_event(XidEvent(UUID, 74), now=0)
    tracker.observe_event(XidEvent(UUID, 74), now=500)
    assert not tracker.health(UUID, now=HOLD + 1).healthy
    assert tracker.health(UUID, now=500 + HOLD).healthy


def test_xids_outside_the_set_do_not_touch_health():
    tracker = HealthTracker()
    assert tracker.observe_event(XidEvent(UUID, 13), now=0) is False  # application error
    assert tracker.observe_event(XidEvent(UUID, 31), now=0) is False  # page fault in user code
    assert tracker.health(UUID, now=1).healthy


def test_the_xid_set_is_configurable():
    tracker = HealthTracker(HealthSettings(unhealthy_xids=frozenset({13})))
    assert tracker.observe_event(XidEvent(UUID, 79), now=0) is False
    assert tracker.observe_event(XidEvent(UUID, 13), now=0) is True
    assert tracker.health(UUID, now=1).reason == "XID 13 (graphics engine exception)"


def test_the_xid_stays_while_its_counter_stays():
    """XID 48 leaves an uncorrectable ECC count behind: the GPU is back only once it is reset."""
    tracker = HealthTracker(HealthSettings(xid_hold_s=HOLD))
    tracker.observe_event(XidEvent(UUID, 48), now=0)
    tracker.observe_reading(reading(ecc=1))
    assert tracker.health(UUID, now=1).reason == (
        "XID 48 (double-bit ECC error); uncorrectable ECC errors since the last reset: 1")
    assert tracker.health(UUID, now=HOLD + 1).reason == "uncorrectable ECC errors since the last reset: 1"
    tracker.observe_reading(reading(ecc=0))  # the GPU was reset: volatile counters start over
    assert tracker.health(UUID, now=HOLD + 2).healthy


@pytest.mark.parametrize(("sick", "reason"), [
    pytest.param({"lost": True}, "GPU fell off the bus (NVML: GPU is lost)", id="lost"),
    pytest.param({"ecc": 3}, "uncorrectable ECC errors since the last reset: 3", id="ecc"),
    pytest.param({"retired": True}, "page retirement pending a GPU reset", id="retired-pages"),
    pytest.param({"remap": True}, "row remapping pending a GPU reset", id="remap-pending"),
    pytest.param({"failed": True}, "row remapping failed (no spare rows left; the GPU needs servicing)",
                 id="remap-failed"),
])
def test_counter_conditions_hold_exactly_while_the_reading_shows_them(sick, reason):
    tracker = HealthTracker()
    tracker.observe_reading(reading(**sick))
    assert tracker.health(UUID, now=0).reason == reason
    tracker.observe_reading(reading())
    assert tracker.health(UUID, now=1).healthy


def test_mig_contained_xid_names_the_instance():
    tracker = HealthTracker()
    tracker.observe_event(XidEvent(UUID, 94, gpu_instance=1, compute_instance=0), now=0)
    assert tracker.health(UUID, now=1).reason == "XID 94 (contained ECC error) in MIG instance 1/0"


def test_unknown_gpus_are_healthy_and_forgotten_gpus_too():
    tracker = HealthTracker()
    assert tracker.health("GPU-never-seen", now=0).healthy
    tracker.observe_reading(reading(lost=True))
    tracker.forget(keep=["GPU-other"])
    assert tracker.health(UUID, now=0).healthy


@pytest.mark.parametrize(("text", "xids"), [
    ("48,79", {48, 79}), (" 79 , 48 ,", {48, 79}), ("default", DEFAULT_UNHEALTHY_XIDS),
    ("default,13", DEFAULT_UNHEALTHY_XIDS | {13}),
])
def test_parse_xid_list(text, xids):
    assert parse_xid_list(text) == xids


@pytest.mark.parametrize("text", ["", "48,x", "-1", "0", " , "])
def test_parse_xid_list_rejects(text):
    with pytest.raises(ValueError):
        parse_xid_list(text)


def test_settings_refuse_a_hold_that_never_ends():
    with pytest.raises(ValueError, match="positive"):
        HealthSettings(xid_hold_s=0)


# -- the invariant, over arbitrary histories -------------------------------------------------

_counter = st.fixed_dictionaries({
    "lost": st.booleans(), "ecc": st.integers(0, 3), "retired": st.booleans(), "remap": st.booleans(),
    "failed": st.booleans()})
_step = st.one_of(
    st.tuples(st.just("xid"), st.sampled_from([13, 31, 43, 48, 63, 74, 79, 92, 94, 95, 119])),
    st.tuples(st.just("read"), _counter),
    st.tuples(st.just("wait"), st.floats(min_value=0, max_value=2 * HOLD, allow_nan=False)),
)


@settings(max_examples=300)
@given(history=st.lists(_step, max_size=40), xids=st.frozensets(st.sampled_from([13, 48, 74, 79, 94]), min_size=1))
def test_healthy_iff_no_active_condition(history, xids):
    """Against an independent model of the rule: the counters of the last reading, plus every
    XID of the configured set seen less than `hold` ago."""
    tracker = HealthTracker(HealthSettings(unhealthy_xids=xids, xid_hold_s=HOLD))
    now, last_seen, counters = 0.0, {}, {"lost": False, "ecc": 0, "retired": False, "remap": False, "failed": False}
    for kind, value in history:
        if kind == "xid":
            tracker.observe_event(XidEvent(UUID, value), now=now)
            if value in xids:
                last_seen[value] = now
        elif kind == "read":
            tracker.observe_reading(reading(**value))
            counters = value
        else:
            now += value
        verdict = tracker.health(UUID, now=now)
        active_xids = {x for x, t in last_seen.items() if now - t < HOLD}
        active_counters = counters["lost"] or counters["ecc"] > 0 or counters["retired"] or counters["remap"] \
            or counters["failed"]
        assert verdict.healthy == (not active_xids and not active_counters)
        assert verdict.healthy == (verdict.reason == "")
        assert {c.kind for c in verdict.conditions if c.kind.startswith("xid-")} == {f"xid-{x}" for x in active_xids}


@given(xid=st.sampled_from(sorted(DEFAULT_UNHEALTHY_XIDS)), quiet=st.floats(min_value=HOLD, max_value=10 * HOLD))
def test_never_stuck_unhealthy_once_everything_clears(xid, quiet):
    """The device plugin's failure mode: unhealthy forever. Here a clean reading plus a quiet
    hold always brings the GPU back."""
    tracker = HealthTracker(HealthSettings(xid_hold_s=HOLD))
    tracker.observe_event(XidEvent(UUID, xid), now=0)
    tracker.observe_reading(reading(lost=True, ecc=2, remap=True))
    tracker.observe_reading(reading())
    assert tracker.health(UUID, now=quiet).healthy
