"""Time-driven results over several engine seeds: every seed runs, every report names its seeds,
a policy's result is a mean with its spread, and the printed command reproduces the numbers."""

from __future__ import annotations

import json
import shlex

import pytest

from scheduler.cli import main
from scheduler.cli.simulate_time import reproduce_command
from simulator.report.seeds import Spread, paired


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _command(report: str) -> str:
    return next(line.strip("`") for line in report.splitlines() if line.startswith("`gpusched simulate"))


def test_run_mode_runs_every_seed_not_only_the_first(small_trace, tmp_path):
    nodes, pods = small_trace
    out = tmp_path / "out"
    assert main(["simulate", "--trace", str(pods), "--nodes", str(nodes), "--policy", "bestfit", "--seeds", "1-3",
                 "--out", str(out), "--quiet"]) == 0
    assert [r["seed"] for r in _summary(out)["runs"]] == [1, 2, 3]
    assert (out / "runs" / "bestfit" / "seed-3" / "pods.csv").is_file()


def test_compare_reports_every_seed_mean_spread_and_paired_difference(small_trace, tmp_path):
    nodes, pods = small_trace
    out = tmp_path / "out"
    assert main(["simulate", "compare", "--trace", str(pods), "--nodes", str(nodes), "--policy", "fgd,bestfit",
                 "--seeds", "1-3", "--out", str(out), "--quiet"]) == 0
    summary = _summary(out)
    assert summary["engine_seeds"] == [1, 2, 3]
    assert [(r["label"], r["seed"]) for r in summary["runs"]] == [
        ("fgd", 1), ("fgd", 2), ("fgd", 3), ("bestfit", 1), ("bestfit", 2), ("bestfit", 3)]
    report = (out / "report.md").read_text()
    assert "engine seeds 1, 2, 3" in report
    assert "mean ± standard deviation over 3 engine seeds" in report
    assert "of 3 seeds" in report  # the paired comparison says on how many seeds it holds
    assert " ± " in report


def test_a_single_seed_is_called_a_single_run(small_trace, tmp_path):
    nodes, pods = small_trace
    out = tmp_path / "out"
    assert main(["simulate", "compare", "--trace", str(pods), "--nodes", str(nodes), "--policy", "fgd,bestfit",
                 "--out", str(out), "--quiet"]) == 0
    report = (out / "report.md").read_text()
    assert "engine seed 42" in report and "one run per policy" in report
    assert "fgd (engine seed 42)" in report


def test_the_printed_command_reproduces_the_numbers(small_trace, tmp_path):
    nodes, pods = small_trace
    first = tmp_path / "first"
    assert main(["simulate", "compare", "--trace", str(pods), "--nodes", str(nodes), "--policy", "fgd,bestfit",
                 "--seeds", "3-4", "--out", str(first), "--quiet"]) == 0
    command = _command((first / "report.md").read_text())
    argv = shlex.split(command)
    assert argv[:3] == ["gpusched", "simulate", "compare"] and "--out" not in argv
    again = tmp_path / "again"
    assert main([*argv[1:], "--out", str(again), "--quiet"]) == 0

    def numbers(out):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in _summary(out)["runs"]]

    assert numbers(again) == numbers(first)


def test_the_command_names_the_generator_and_engine_seeds():
    import argparse

    args = argparse.Namespace(mode="compare", trace=None, generate=7, nodes=None, cluster=None,
                              policy="fgd-plus,fgd", seeds="42-44", via_http=True, extender_url=None)
    assert reproduce_command(args, seeds=[42, 43, 44]) == (
        "gpusched simulate compare --generate 7 --policy fgd-plus,fgd --seeds 42-44 --via-http")


@pytest.mark.parametrize(("a", "b", "lower_better", "expected"), [
    ([1, 2, 3, 4, 5], [2, 3, 4, 5, 1], True, "a lower on 4 of 5 seeds"),
    ([5, 5, 5], [1, 1, 6], True, "a higher on average (+2.3), lower on 1 of 3 seeds"),
    ([60, 70], [50, 50], False, "a higher on 2 of 2 seeds"),
], ids=["lower-is-better", "worse-on-average", "higher-is-better"])
def test_paired_differences_say_how_many_seeds_they_hold_on(a, b, lower_better, expected):
    assert expected in paired("a", Spread(tuple(a)), "b", Spread(tuple(b)), lower_better=lower_better).sentence()


def test_spread_is_mean_and_standard_deviation():
    assert Spread((1.0, 2.0, 3.0)).text() == "2.0 ± 1.0"
    assert Spread((4.0,)).text() == "4.0"
