"""`gpusched simulate` in time-driven and compare modes, and `gpusched demo`: files written, errors."""

from __future__ import annotations

import json

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
    for name in ("report.md", "report.html", "runs/bestfit/timeline.csv", "runs/bestfit/pods.csv",
                 "runs/bestfit/jobs.csv", "plots/allocated_pct.png", "plots/queue_delay_s_by_team.png"):
        assert (out / name).is_file(), name
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_compare_puts_policies_side_by_side(tmp_path):
    out = tmp_path / "cmp"
    assert main(["simulate", "compare", "--generate", "5", "--policy", "fgd,spread", "--out", str(out), "--quiet"]) == 0
    labels = [r["label"] for r in json.loads((out / "summary.json").read_text())["runs"]]
    assert labels == ["fgd", "spread"]
    assert "| | fgd | spread |" in (out / "report.md").read_text().replace("|  |", "| |")


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
