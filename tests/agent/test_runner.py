"""The loop, end to end over the fake NVML: XIDs turn a GPU unhealthy and back, errors are retried."""

import io
import json
from datetime import UTC, datetime

import pytest

from scheduler.agent.exporter import AgentMetrics
from scheduler.agent.health import HealthSettings
from scheduler.agent.nvml_source import NvmlError, NvmlUnavailable
from scheduler.agent.runner import Agent, AgentSettings, PrintSink
from tests.agent.builders import FakeClock, fake, gpu, uuid_of


def agent_over(source, clock, *, sink=None, hold=600.0, interval=10.0, **settings):
    return Agent(AgentSettings(node="gpu-1", interval_s=interval, health=HealthSettings(xid_hold_s=hold), **settings),
                 source=source, sink=sink or PrintSink(io.StringIO()), metrics=AgentMetrics("gpu-1"),
                 owners=source, mps_probe=lambda: source.mps_daemon, clock=clock,
                 wall=lambda: datetime.fromtimestamp(1714564800 + clock(), UTC))


def printed(sink):
    """Every annotation the dry-run sink printed, decoded."""
    decoder, text, out, at = json.JSONDecoder(), sink.out.getvalue(), [], 0
    while at < len(text.rstrip()):
        value, at = decoder.raw_decode(text, at)
        out.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return out


def until(clock, t):
    return lambda: clock.now >= t


def test_an_xid_turns_the_gpu_unhealthy_at_once_and_it_comes_back_after_the_hold():
    clock = FakeClock(start=0)
    source = fake(gpu(0), gpu(1), clock=clock, script=[{"afterReads": 2, "xid": {"gpu": 1, "xid": 79}}])
    sink = PrintSink(io.StringIO())
    agent = agent_over(source, clock, sink=sink, hold=60, interval=10)
    agent.run_forever(until(clock, 100))
    states = [[g["healthy"] for g in annotation] for annotation in printed(sink)]
    # printed only on change: healthy, then GPU 1 unhealthy, then healthy again
    assert states == [[True, True], [True, False], [True, True]]
    assert printed(sink)[1][1]["unhealthyReason"] == "XID 79 (GPU fell off the bus)"
    # the XID arrived while waiting after read 2 (t=10): the next pass ran at once, not at t=20
    assert source.reads >= 9


def test_the_xid_pass_runs_without_waiting_for_the_interval():
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock, script=[{"afterReads": 1, "xid": {"gpu": 0, "xid": 48}}])
    agent = agent_over(source, clock, interval=30)
    agent.step()
    agent.wait(30, lambda: False)
    assert clock.now == 0  # returned as soon as the event arrived
    assert agent.step()[0]["healthy"] is False


def test_a_lost_gpu_stays_listed_unhealthy_until_it_is_back():
    clock = FakeClock(start=0)
    source = fake(gpu(0), gpu(1), clock=clock)
    agent = agent_over(source, clock)
    source.update(1, lost=True)
    entries = agent.step()
    assert [e["uuid"] for e in entries] == [uuid_of(0), uuid_of(1)]
    assert entries[1]["healthy"] is False
    assert entries[1]["unhealthyReason"] == "GPU fell off the bus (NVML: GPU is lost)"
    source.update(1, lost=False)
    assert agent.step()[1]["healthy"] is True


def test_nvml_errors_are_counted_and_retried_with_backoff():
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    source.fail_reads(3, "NVML: Unknown Error")
    agent = agent_over(source, clock, backoff_initial_s=1, backoff_max_s=4)
    agent.run_forever(lambda: source.reads >= 2)
    assert agent.metrics.errors("nvml") == 3
    assert clock.slept[:3] == [1, 2, 4]  # doubling backoff; the source was reopened each time
    assert agent.entries[0]["uuid"] == uuid_of(0)


def test_no_driver_at_start_keeps_retrying_in_daemon_mode():
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    source.close()
    source.fail_opens(5)
    agent = agent_over(source, clock, backoff_initial_s=1, backoff_max_s=8)
    agent.run_forever(lambda: source.reads >= 1)
    assert agent.metrics.errors("nvml-unavailable") == 5
    assert clock.slept[:5] == [1, 2, 4, 5, 3]  # 8 s waits are cut into 5 s chunks: 1, 2, 4, 8
    assert source.reads == 1


def test_run_once_raises_the_error_for_the_cli():
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    source.fail_reads(1, "NVML: GPU requires reset")
    with pytest.raises(NvmlError, match="requires reset"):
        agent_over(source, clock).run_once()
    assert not source.is_open
    source.close()
    source.fail_opens(1, "no NVIDIA driver on this node")
    with pytest.raises(NvmlUnavailable):
        agent_over(source, clock).run_once()


def test_sharing_strategy_comes_from_the_node_label_unless_overridden():
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    labelled = PrintSink(io.StringIO(), labels={"nvidia.com/gpu.sharing-strategy": "time-slicing"})
    assert agent_over(source, clock, sink=labelled).step()[0]["sharing"] == "time-slicing"
    overridden = agent_over(source, clock, sink=labelled, sharing_strategy="none")
    assert overridden.step()[0]["sharing"] == "exclusive"


def test_xids_outside_the_set_are_counted_but_change_nothing():
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    agent = agent_over(source, clock)
    agent.step()
    source.inject_xid(0, 13)
    agent.wait(10, lambda: False)
    assert clock.now == 10  # no early pass
    assert agent.step()[0]["healthy"] is True
    assert agent.metrics.xid_count(uuid_of(0), 13) == 1


def test_when_nvml_fails_the_last_seen_gpus_are_published_unhealthy_with_the_error():
    clock = FakeClock(start=0)
    source = fake(gpu(0), gpu(1), clock=clock)
    sink = PrintSink(io.StringIO())
    agent = agent_over(source, clock, sink=sink, backoff_initial_s=1)
    agent.step()
    source.fail_reads(1, "NVML: GPU requires reset")
    agent.run_forever(lambda: source.reads >= 2)
    first, blind, back = printed(sink)
    assert [g["healthy"] for g in first] == [True, True]
    assert [(g["healthy"], g["unhealthyReason"]) for g in blind] == [
        (False, "the agent cannot read NVML: NVML: GPU requires reset")] * 2
    assert [g["healthy"] for g in back] == [True, True]


def test_nvml_failing_before_any_read_publishes_nothing():
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    source.close()
    source.fail_opens(1)
    sink = PrintSink(io.StringIO())
    agent_over(source, clock, sink=sink).run_forever(lambda: source.reads >= 1)
    assert len(printed(sink)) == 1  # only the good pass
