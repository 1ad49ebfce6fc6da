"""The extender side of the agent's heartbeat: when a node stops taking new pods."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.staleness import (
    DEFAULT_STALENESS,
    format_rfc3339,
    heartbeat_reason,
    parse_rfc3339,
    short_duration,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("heartbeat", "expected"), [
    pytest.param(None, "", id="no-agent-falls-back-to-gfd"),
    pytest.param("", "", id="empty-annotation-is-no-agent"),
    pytest.param("2024-05-01T11:59:30Z", "", id="fresh"),
    pytest.param("2024-05-01T11:58:00Z", "", id="exactly-at-the-limit-is-fresh"),
    pytest.param("2024-05-01T11:57:00Z", "gpusched agent on node gpu-1 silent for 3m", id="3m-silent"),
    pytest.param("2024-05-01T09:30:00Z", "gpusched agent on node gpu-1 silent for 2h", id="2h30m-reads-2h"),
    pytest.param("2024-05-01T13:57:00+02:00", "gpusched agent on node gpu-1 silent for 3m", id="offset"),
    pytest.param("2024-05-01T12:05:00Z", "", id="future-clock-skew"),
    pytest.param("yesterday", "gpusched agent on node gpu-1 wrote an unreadable heartbeat 'yesterday'",
                 id="garbage-takes-no-pods"),
    pytest.param("2024-05-01T11:59:30", "gpusched agent on node gpu-1 wrote an unreadable heartbeat "
                 "'2024-05-01T11:59:30'", id="no-offset-is-unreadable"),
])
def test_heartbeat_reason(heartbeat, expected):
    assert heartbeat_reason(heartbeat, now=NOW, staleness=DEFAULT_STALENESS, node="gpu-1") == expected


def test_staleness_is_configurable():
    beat = "2024-05-01T11:59:00Z"  # 60 s old
    assert heartbeat_reason(beat, now=NOW, staleness=timedelta(seconds=90), node="n") == ""
    assert heartbeat_reason(beat, now=NOW, staleness=timedelta(seconds=30), node="n") == (
        "gpusched agent on node n silent for 60s")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"), (180, "3m"), (199, "3m"),
    (119 * 60, "119m"), (2 * 3600, "2h"), (47 * 3600 + 3599, "47h"), (48 * 3600, "2d"), (-5, "0s"),
])
def test_short_duration(seconds, text):
    assert short_duration(timedelta(seconds=seconds)) == text


def test_fractional_seconds_parse():
    assert parse_rfc3339("2024-05-01T11:59:30.123456Z") == datetime(2024, 5, 1, 11, 59, 30, 123456, tzinfo=UTC)


@given(age=st.integers(min_value=-86400, max_value=10 * 86400),
       limit=st.integers(min_value=1, max_value=86400))
def test_stale_iff_older_than_the_limit(age, limit):
    """A node is refused exactly when its last heartbeat is older than the limit, whatever the numbers."""
    beat = format_rfc3339(NOW - timedelta(seconds=age))
    reason = heartbeat_reason(beat, now=NOW, staleness=timedelta(seconds=limit), node="n")
    assert bool(reason) == (age > limit)
    if reason:
        assert reason == f"gpusched agent on node n silent for {short_duration(timedelta(seconds=age))}"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_written_heartbeats_read_back(moment):
    assert parse_rfc3339(format_rfc3339(moment)) == moment.replace(microsecond=0)
