"""The figures of a time-driven report, each over every engine seed of a label: the timeline
resampled onto one time grid and drawn as the mean with its 25–75 % band, team usage as the mean
over seeds, and queueing delay by group as the mean of each seed's p95."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from simulator.metrics import TIMELINE_COLUMNS
from simulator.report import plots
from simulator.report.document import Figure

GRID_POINTS = 400


def time_figures(out: Path, groups: Mapping[str, Sequence]) -> list[Figure]:
    grid = _grid(groups)
    figures = []
    for column, ylabel in ((1, "GPU allocated (% of all GPUs)"), (2, "GPU fragment (% of all GPUs)"),
                           (3, "pending pods")):
        runs = {label: np.array([_resample(grid, [row[0] for row in r.recorder.timeline],
                                           [row[column] for row in r.recorder.timeline]) for r in results])
                for label, results in groups.items()}
        path = plots.band_plot(out / "plots" / f"{TIMELINE_COLUMNS[column]}.png", grid / 3600, runs, ylabel=ylabel,
                               title=f"{ylabel} over time", xlabel="time (h)", centre="mean",
                               markers=events(groups))
        figures.append(Figure(path, f"{ylabel} over time: mean over {_seeds(groups)}, band 25–75 %{_marked(groups)}"))
    return figures


def delay_figures(out: Path, summaries: Mapping[str, Sequence[dict]]) -> list[Figure]:
    figures = []
    for key, what in (("queue_delay_s_by_team", "team"), ("queue_delay_s_by_size", "job size")):
        names = list(dict.fromkeys(g for runs in summaries.values() for s in runs for g in s[key]))
        series = {f"{label} p95": [float(np.mean([s[key].get(g, {}).get("p95") or 0.0 for s in runs])) for g in names]
                  for label, runs in summaries.items()}
        path = plots.bar_plot(out / "plots" / f"{key}.png", names, series, ylabel="queueing delay p95 (s)",
                              title=f"queueing delay p95 by {what}")
        n = len(next(iter(summaries.values())))
        figures.append(Figure(path, f"queueing delay (95th percentile) by {what}, mean over {n} engine seed(s)"))
    return figures


def team_figures(out: Path, groups: Mapping[str, Sequence], slug) -> list[Figure]:
    grid = _grid(groups)
    figures = []
    for label, results in groups.items():
        first = results[0]
        teams = first.recorder.teams
        series = {}
        for i, team in enumerate(teams):
            mean = np.mean([_resample(grid, [row[0] for row in r.recorder.team_usage],
                                      [row[1 + i] for row in r.recorder.team_usage]) for r in results], axis=0)
            series[team] = (grid / 3600, mean)
        levels = {t.name: t.guaranteed_gpus for t in first.scenario.teams}
        path = plots.line_plot(out / "plots" / f"teams-{slug(label)}.png", series, xlabel="time (h)",
                               ylabel="GPUs in use", title=f"{label}: GPUs in use per team", step=True, levels=levels,
                               markers=events(groups))
        figures.append(Figure(path, f"{label}: GPUs in use per team, mean over {len(results)} engine seed(s) "
                                    f"(dashed: each team's guarantee){_marked(groups)}"))
    return figures


def events(groups: Mapping[str, Sequence]) -> list[tuple[float, str]]:
    """(hours, what) of the workload's GPU failures and repairs and its last arrival: where a
    curve's turn has a cause (the same workload under every label)."""
    scenario = next(iter(groups.values()))[0].scenario
    out = []
    for f in scenario.failures:
        out.append((f.at_s / 3600, f"GPU failure: {f.node} GPU {f.gpu}"))
        if f.repair_s is not None:
            out.append(((f.at_s + f.repair_s) / 3600, f"GPU repaired: {f.node} GPU {f.gpu}"))
    if scenario.jobs:
        out.append((max(j.submit_s for j in scenario.jobs) / 3600, "last arrival"))
    return out


def _marked(groups: Mapping[str, Sequence]) -> str:
    kinds = list(dict.fromkeys(what.split(":", 1)[0] for _, what in events(groups)))
    return f"; vertical lines: {', '.join(kinds)}" if kinds else ""


def _grid(groups: Mapping[str, Sequence]) -> np.ndarray:
    end = max((r.recorder.timeline[-1][0] for rs in groups.values() for r in rs if r.recorder.timeline), default=0.0)
    return np.linspace(0.0, max(end, 1.0), GRID_POINTS)


def _resample(grid: np.ndarray, t: Sequence[float], v: Sequence[float]) -> np.ndarray:
    """The step function (t, v) at each grid time: the last sample at or before it (its first before any)."""
    if not len(t):
        return np.zeros_like(grid)
    at = np.clip(np.searchsorted(np.asarray(t, float), grid, side="right") - 1, 0, len(t) - 1)
    return np.asarray(v, float)[at]


def _seeds(groups: Mapping[str, Sequence]) -> str:
    n = len(next(iter(groups.values())))
    return f"{n} engine seed{'s' if n != 1 else ''}"
