"""What a run leaves in --out: rounded CSVs, nothing from an earlier run, and plots where no two
series share a colour."""

from __future__ import annotations

import csv

from scheduler.cli import main
from simulator.report.plots import COLOURS, colours


def _run(small_trace, out, *extra):
    nodes, pods = small_trace
    assert main(["simulate", "--trace", str(pods), "--nodes", str(nodes), "--out", str(out), "--quiet", *extra]) == 0


def test_pod_times_are_rounded(small_trace, tmp_path):
    _run(small_trace, tmp_path / "o", "--policy", "bestfit")
    with (tmp_path / "o" / "runs" / "bestfit" / "seed-42" / "pods.csv").open() as f:
        for row in csv.DictReader(f):
            for key in ("submit_s", "start_s", "end_s"):
                assert len(row[key].partition(".")[2]) <= 3, row
    assert "Fragment (FGD's definition)" in (tmp_path / "o" / "report.md").read_text()


def test_an_earlier_runs_outputs_are_removed(small_trace, tmp_path):
    out = tmp_path / "o"
    _run(small_trace, out, "--policy", "fgd")
    (out / "plots" / "teams-old.png").write_bytes(b"")
    (out / "notes.txt").write_text("mine")
    _run(small_trace, out, "--policy", "bestfit")
    assert not (out / "runs" / "fgd").exists() and not (out / "plots" / "teams-old.png").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only what a run writes is cleared


def test_series_of_one_plot_never_share_a_colour():
    chosen = colours(["fgd @ small", "fgd @ big", "fgd-plus", "fgd"])
    assert len(set(chosen.values())) == 4
    assert chosen["fgd-plus"] == COLOURS["fgd-plus"] and chosen["fgd @ small"] == COLOURS["fgd"]


def test_fgd_and_fgd_plus_are_far_apart():
    import colorsys

    def hls(c):
        return colorsys.rgb_to_hls(*[int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)])

    (h1, l1, _), (h2, l2, _) = hls(COLOURS["fgd"]), hls(COLOURS["fgd-plus"])
    hue = min(abs(h1 - h2), 1 - abs(h1 - h2)) * 360
    assert hue > 60 or abs(l1 - l2) > 0.3  # the old pink beside red: 44 degrees, 0.18 lighter


def test_time_plots_mark_the_gpu_failure_and_the_last_arrival():
    from types import SimpleNamespace

    from simulator.report.replay_figures import events
    from simulator.scenario import GpuFailure, JobSpec, Scenario

    scenario = Scenario("s", (JobSpec("a", "t", 0.0, 60.0, gpus=1), JobSpec("b", "t", 5400.0, 60.0, gpus=1)),
                        failures=(GpuFailure(1800.0, "n1", 3, repair_s=900.0),))
    run = SimpleNamespace(scenario=scenario)
    assert events({"fgd": [run, run]}) == [(0.5, "GPU failure: n1 GPU 3"), (0.75, "GPU repaired: n1 GPU 3"),
                                           (1.5, "last arrival")]


def test_the_demo_report_says_what_its_vertical_lines_are(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seeds", "42", "--in-process", "--quiet"]) == 0
    report = (out / "report.md").read_text()
    assert "vertical lines: GPU failure, GPU repaired, last arrival" in report  # the generated day repairs its GPU
