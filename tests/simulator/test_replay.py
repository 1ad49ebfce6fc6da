"""The time-driven replay: arrivals, departures, retries when capacity frees, GPU failures, metrics."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.core.model import Gpu, Node, Sharing
from simulator import replay
from simulator.generator import Parameters, generate
from simulator.scenario import GpuFailure, JobSpec, Scenario, TeamQuota


def gpu_node(name: str, gpus: int, *, cores: int = 32) -> Node:
    return Node(name, cores * 1000, cores * 4096,
                tuple(Gpu(i, f"{name}-{i}", "A100", 81920, Sharing.TIME_SLICING) for i in range(gpus)))


def job(name: str, submit: float, duration: float, **kw) -> JobSpec:
    return JobSpec(name=name, team=kw.pop("team", "ml"), submit_s=submit, duration_s=duration, **kw)


def test_a_pod_waits_until_capacity_frees_then_runs_its_full_duration():
    # One node, 2 GPUs. A takes both at t=0 for 10 s; B (1 GPU) arrives at t=1 and waits until t=10.
    scenario = Scenario("s", (job("a", 0, 10, gpus=2), job("b", 1, 5, gpus=1)))
    result = replay.run([gpu_node("n", 2)], scenario, policy="fgd", seed=1)
    b = result.recorder.jobs["b"]
    assert (b.started_s, b.finished_s) == (10, 15)
    summary = result.summary
    assert summary["queue_delay_s"]["p50"] == 4.5 and summary["job_completion_s"]["n"] == 2  # delays 0 and 9
    assert summary["makespan_s"] == 15


def test_higher_priority_pods_go_first_when_capacity_frees():
    scenario = Scenario("s", (job("a", 0, 10, gpus=2), job("low", 1, 5, gpus=2),
                              job("high", 2, 5, gpus=2, priority=100)))
    jobs = replay.run([gpu_node("n", 2)], scenario, policy="bestfit", seed=1).recorder.jobs
    assert (jobs["high"].started_s, jobs["low"].started_s) == (10, 15)


def test_a_gpu_failure_evicts_and_restarts_the_job_elsewhere():
    # Best-fit puts the 1-GPU job on n0 (1 GPU, left full) rather than n1 (2 GPUs); GPU 0 of n0 fails
    # at t=5: the job restarts on n1 at once and runs its whole duration again.
    scenario = Scenario("s", (job("a", 0, 100, gpus=1),), failures=(GpuFailure(5, "n0", 0, repair_s=10),))
    result = replay.run([gpu_node("n0", 1), gpu_node("n1", 2)], scenario, policy="bestfit", seed=3)
    pods = sorted(result.recorder.pods.values(), key=lambda p: p.attempt)
    first, second = pods
    assert (first.node, first.end_s, first.evicted) == ("n0", 5, "gpu-failure")
    assert (second.node, second.start_s, second.end_s) == ("n1", 5, 105)
    assert result.summary["evictions"] == {"ml/gpu-failure": 1}
    assert max(row[5] for row in result.recorder.timeline) == 1  # one GPU unhealthy for a while


def test_an_unplaceable_pod_never_starts_and_is_reported():
    scenario = Scenario("s", (job("huge", 0, 10, gpus=4),))
    summary = replay.run([gpu_node("n", 2)], scenario, policy="fgd", seed=1).summary
    assert summary["jobs_never_started"] == 1 and summary["queue_delay_s"]["n"] == 0


def small_generated(seed: int = 3):
    return generate(seed, dataclasses.replace(Parameters(), jobs=60))


def test_the_generator_is_deterministic_and_seeded():
    assert small_generated(3) == small_generated(3)
    assert small_generated(3)[1].jobs != small_generated(4)[1].jobs


def test_generated_job_sizes_follow_the_cited_statistics():
    _, scenario = generate(11, dataclasses.replace(Parameters(), jobs=4000))
    gpus = sorted(j.total_milli / 1000 for j in scenario.jobs)
    # parameters.py: median 1 GPU (Helios Earth, Philly), mean ~2.2 (Helios 2.10, Philly 1.93), 30 % shares
    assert gpus[len(gpus) // 2] == 1.0
    assert 1.9 < sum(gpus) / len(gpus) < 2.6
    assert 0.27 < sum(1 for j in scenario.jobs if j.gpu_milli) / len(gpus) < 0.33
    assert {t.name for t in scenario.teams} == {"vision", "language", "speech", "recsys", "research"}


@pytest.mark.parametrize("policy", ["fgd-plus", "fgd", "bestfit", "random", "packing"])
def test_in_process_and_http_replays_place_identically(policy):
    nodes, scenario = small_generated()
    a = replay.run(nodes, scenario, policy=policy, seed=9)
    b = replay.run(nodes, scenario, policy=policy, seed=9, via_http=True)
    assert a.placements == b.placements and len(a.placements) >= 60
    assert a.summary["queue_delay_s"] == b.summary["queue_delay_s"]


def test_a_gang_starts_all_at_once_when_the_whole_gang_fits():
    # Two 8-GPU nodes; a 1-GPU job holds a GPU of one until t=50. A gang of 2 × 8 GPUs arriving at
    # t=1 takes nothing until both nodes are free, then both members start together.
    scenario = Scenario("s", (job("small", 0, 50, gpus=1), job("gang", 1, 10, width=2, gpus=8, gang=True)))
    result = replay.run([gpu_node("a", 8, cores=96), gpu_node("b", 8, cores=96)], scenario, policy="bestfit", seed=1)
    members = [p for p in result.recorder.pods.values() if p.job == "gang"]
    assert [p.start_s for p in members] == [50, 50] and {p.node for p in members} == {"a", "b"}
    assert result.summary["gang_wait_s"]["p50"] == 49


@pytest.mark.parametrize("ask", [{"gpu_milli": 500}, {"gpus": 1}], ids=["share", "whole-gpu"])
def test_borrowed_gpus_are_reclaimed_for_a_team_under_its_guarantee(ask):
    # 8 GPUs; teams a and b are each guaranteed 4 and may borrow up to 8. Team a fills all 8 (4
    # borrowed); when b asks for half a GPU or a whole one, the reclaimer evicts one of a's borrowed
    # pods for it. (For the whole GPU kube-scheduler counts nvidia.com/gpu itself, finds the node
    # full and never asks the extender: the core hears of the pod from the adapter's pod watch.)
    teams = (TeamQuota("a", 4, 8), TeamQuota("b", 4, 8))
    jobs = (*(job(f"a{i}", i, 1000, team="a", gpus=1) for i in range(8)), job("b0", 20, 10, team="b", **ask))
    result = replay.run([gpu_node("n", 8, cores=96)], Scenario("s", jobs, teams=teams), policy="bestfit", seed=1)
    summary = result.summary
    assert summary["evictions"] == {"a/reclaim": 1}
    assert result.recorder.jobs["b0"].started_s == 20
    assert summary["teams"]["a"]["borrowed_gpus_peak"] == 4 and summary["teams"]["b"]["borrowed_gpus_peak"] == 0
    restarted = [p for p in result.recorder.pods.values() if p.attempt == 1]
    assert len(restarted) == 1 and restarted[0].start_s == 30  # the evicted pod's job comes back when b0 ends
