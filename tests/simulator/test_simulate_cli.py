"""`gpusched simulate` in time-driven and compare modes, and `gpusched demo`: files written, errors."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from scheduler.cli import main
from simulator.traces.alibaba import load_pods
from simulator.traces.timeline import openb_scenario


def test_time_driven_replay_of_a_trace_writes_every_output(small_trace, tmp_path):
    nodes, pods = small_trace
    out = tmp_path / "out"
    assert main(["simulate", "--trace", str(pods), "--nodes", str(nodes), "--policy", "bestfit", "--out", str(out),
                 "--quiet"]) == 0
    run = json.loads((out / "summary.json").read_text())["runs"][0]
    assert (run["policy"], run["jobs"], run["jobs_completed"]) == ("bestfit", 15, 15)
    for name in ("report.md", "report.html", "runs/bestfit/seed-42/timeline.csv", "runs/bestfit/seed-42/pods.csv",
                 "runs/bestfit/seed-42/jobs.csv", "plots/allocated_pct.png", "plots/queue_delay_s_by_team.png"):
        assert (out / name).is_file(), name
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_compare_puts_policies_side_by_side(tmp_path):
    out = tmp_path / "cmp"
    assert main(["simulate", "compare", "--generate", "5", "--policy", "fgd,spread", "--out", str(out), "--quiet"]) == 0
    labels = [r["label"] for r in json.loads((out / "summary.json").read_text())["runs"]]
    assert labels == ["fgd", "spread"]
    assert "| | fgd (engine seed 42) | spread (engine seed 42) |" in (out / "report.md").read_text().replace("|  |", "| |")


def test_openb_rows_become_timed_jobs(small_trace):
    scenario = openb_scenario(load_pods(small_trace[1]), path=small_trace[1])
    assert len(scenario.jobs) == 15 and all(j.duration_s == 1.0 for j in scenario.jobs)  # deletion 1 - scheduled 0


@pytest.mark.parametrize(("args", "expected"), [
    (["--trace", "{pods}", "--generate", "3"], "--trace and --generate cannot be used together"),
    (["--trace", "{pods}"], "--trace needs a cluster: --nodes NODES.csv or --cluster FILE"),
    (["--generate", "3", "--cluster", "{tmp}/none.yaml"], "{tmp}/none.yaml: no such file or directory"),
    (["--generate", "3", "--policy", "fgd,bestfit"], "one --policy per run"),
    (["compare", "--generate", "3", "--policy", "fgd"], "compare needs two or more policies"),
], ids=["trace-and-generate", "trace-without-cluster", "missing-cluster", "two-policies", "compare-one"])
def test_time_driven_cli_errors(small_trace, tmp_path, capsys, args, expected):
    fill = {"pods": small_trace[1], "tmp": tmp_path}
    assert main(["simulate", *[a.format(**fill) for a in args], "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected.format(**fill) in err


@pytest.mark.slow
def test_demo_writes_the_report_through_the_http_extender(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--policy", "fgd", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())["runs"][0]
    assert summary["jobs_completed"] == summary["jobs"] == 400
    assert "through the real HTTP extender" in (out / "report.md").read_text()
    assert f"{out}/report.html" in capsys.readouterr().err.replace("\n", "")


CLUSTER_YAML = """nodes:
- {name: g8, cpuMilli: 96000, memoryMiB: 393216, gpus: {count: 8, model: G2, memoryMiB: 20000, sharing: time-slicing}}
- {name: g2, cpuMilli: 104000, memoryMiB: 524288, gpus: {count: 2, model: T4, memoryMiB: 15000, sharing: time-slicing}}
- {name: g4, cpuMilli: 32000, memoryMiB: 131072, gpus: {count: 4, model: V100M16, memoryMiB: 16000, sharing: mps}}
"""


@contextlib.contextmanager
def served(cluster, *flags: str):
    """`gpusched serve --cluster` in its own process, as a user starts it; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "scheduler.cli", "serve", "--cluster", str(cluster),
                               "--port", str(port), "--log-level", "warning", *flags])
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5)
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def same_runs(remote, local, label):
    for name in ("pods.csv", "timeline.csv"):
        assert (remote / "runs" / label / name).read_text() == (local / "runs" / label / name).read_text()


@pytest.mark.slow
def test_replay_against_an_extender_already_running(small_trace, tmp_path):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER_YAML)
    remote, local = tmp_path / "remote", tmp_path / "local"
    common = ["--trace", str(small_trace[1]), "--cluster", str(cluster), "--policy", "bestfit", "--quiet"]
    with served(cluster, "--virtual-clock", "--seed", "42") as url:
        assert main(["simulate", *common, "--extender-url", url, "--out", str(remote)]) == 0
    assert main(["simulate", *common, "--out", str(local)]) == 0
    same_runs(remote, local, "bestfit/seed-42")  # the remote extender places as the in-process core does


@pytest.mark.slow
def test_gangs_and_teams_against_a_running_extender_live_in_the_traces_time(tmp_path, capsys):
    """A generated workload (gangs with timeouts, teams, a GPU failure): reservations must end by
    the trace's clock and pending pods must reach the extender, or the placements differ. The
    extender must have the workload's teams and the run's seed; the refusal says what to give it."""
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER_YAML)
    remote, local = tmp_path / "remote", tmp_path / "local"
    common = ["--generate", "4", "--cluster", str(cluster), "--policy", "fgd-plus", "--seeds", "7", "--quiet"]
    with served(cluster, "--virtual-clock", "--seed", "7") as url:
        assert main(["simulate", *common, "--extender-url", url, "--out", str(remote)]) == 2
    teams = capsys.readouterr().err.split("holding `teams: ", 1)[1].split("`", 1)[0]
    config = tmp_path / "teams.yaml"
    config.write_text(f"teams: [{teams}]\n")
    with served(cluster, "--virtual-clock", "--seed", "7", "--config", str(config)) as url:
        assert main(["simulate", *common, "--extender-url", url, "--out", str(remote)]) == 0
    assert main(["simulate", *common, "--out", str(local)]) == 0
    same_runs(remote, local, "fgd-plus/seed-7")
    assert "reclaim" in (local / "runs/fgd-plus/seed-7/pods.csv").read_text()  # the teams mattered


@pytest.mark.slow
def test_an_extender_on_wall_time_or_with_an_earlier_runs_pods_is_refused(small_trace, tmp_path, capsys):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER_YAML)
    common = ["--trace", str(small_trace[1]), "--cluster", str(cluster), "--policy", "bestfit", "--quiet"]
    with served(cluster) as url:
        assert main(["simulate", *common, "--extender-url", url, "--out", str(tmp_path / "a")]) == 2
    assert "keeps wall-clock time" in capsys.readouterr().err
    with served(cluster, "--virtual-clock", "--seed", "42") as url:
        assert main(["simulate", *common, "--extender-url", url, "--out", str(tmp_path / "b")]) == 0
        assert main(["simulate", *common, "--extender-url", url, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "is not fresh" in err and "restart it" in err and "Traceback" not in err


def test_compare_puts_clusters_side_by_side(tmp_path):
    small = tmp_path / "small.yaml"
    small.write_text(CLUSTER_YAML)
    big = tmp_path / "big.yaml"
    big.write_text(CLUSTER_YAML + CLUSTER_YAML.replace("name: g", "name: h").replace("nodes:\n", ""))
    out = tmp_path / "cmp"
    assert main(["simulate", "compare", "--generate", "4", "--policy", "fgd", "--cluster", str(small),
                 "--cluster", str(big), "--out", str(out), "--quiet"]) == 0
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [r["label"] for r in runs] == ["fgd @ small", "fgd @ big"]
    assert runs[1]["queue_delay_s"]["mean"] <= runs[0]["queue_delay_s"]["mean"]  # twice the GPUs, less waiting


def test_an_openb_pod_list_replayed_by_time_is_called_a_sample(small_trace, tmp_path, capsys):
    nodes, pods = small_trace
    out = tmp_path / "out"
    assert main(["simulate", "--trace", str(pods), "--nodes", str(nodes), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    warning = next(line for line in err.splitlines() if line.startswith("gpusched simulate: warning:"))
    assert "a sample of pods, not a load timeline" in warning and "--protocol fgd" in warning
    assert "a sample of pods, not a load timeline" in (out / "report.md").read_text()
