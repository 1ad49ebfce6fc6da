"""Outputs of time-driven replays: summary.json, CSVs (timeline, pods, jobs), PNG plots and
report.md / report.html. One run or several side by side (`compare`), the same writer."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from simulator.metrics import TIMELINE_COLUMNS
from simulator.report import plots
from simulator.report.document import Document, Figure, Section, Table


def write(out: Path, results: Sequence, *, title: str, notes: Sequence[str] = ()) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    summaries = [r.summary for r in results]
    (out / "summary.json").write_text(json.dumps({"runs": summaries}, indent=1) + "\n")
    for r in results:
        _csvs(out / "runs" / _slug(r.label), r)
    scenario = results[0].scenario
    doc = Document(title, intro=[*scenario.notes, *notes])
    doc.sections.append(Section("Key numbers", [_key_table(summaries)]))
    doc.sections.append(Section("Over time", _time_figures(out, results)))
    doc.sections.append(Section("Queueing delay by team and by job size", [
        _breakdown(summaries, "queue_delay_s_by_team", "team"), _breakdown(summaries, "queue_delay_s_by_size", "job size"),
        *_delay_figures(out, summaries)]))
    doc.sections.append(Section("Teams: quota use and borrowing", [
        "GPUs in use per team, time-weighted; borrowed: GPUs held by pods bound while their team was above its "
        "guarantee (the core marks them gpusched.io/borrowed at bind, and they are the ones reclaim may evict).",
        _team_table(summaries), *_team_figures(out, results)]))
    evictions = sorted({k for s in summaries for k in s["evictions"]})
    if evictions:
        doc.sections.append(Section("Evictions", [Table(["team / cause", *[s["label"] for s in summaries]],
                                                        [[k, *[str(s["evictions"].get(k, 0)) for s in summaries]]
                                                         for k in evictions])]))
    doc.sections.append(Section("Files", [
        "summary.json (every number above), runs/<label>/timeline.csv, pods.csv, jobs.csv, plots/*.png."]))
    doc.write_markdown(out / "report.md")
    doc.write_html(out / "report.html")
    return out / "report.md"


KEY_ROWS = (
    ("jobs completed", lambda s: f"{s['jobs_completed']} / {s['jobs']}"),
    ("jobs never started", lambda s: str(s["jobs_never_started"])),
    ("GPU allocation % (mean while arriving / whole run / peak)",
     lambda s: _triple(s["gpu_allocation_pct"], "mean_while_arriving", "mean", "peak")),
    ("GPU fragment % of capacity (mean while arriving / whole run / peak)",
     lambda s: _triple(s["fragment_pct"], "mean_while_arriving", "mean", "peak")),
    ("queueing delay s (p50 / p95 / mean)", lambda s: _triple(s["queue_delay_s"], "p50", "p95", "mean")),
    ("job completion time s (p50 / p95 / mean)", lambda s: _triple(s["job_completion_s"], "p50", "p95", "mean")),
    ("gang wait s (p50 / p95, gangs)", lambda s: f"{_triple(s['gang_wait_s'], 'p50', 'p95')} ({s['gang_wait_s']['n']})"),
    ("evictions", lambda s: str(sum(s["evictions"].values()))),
    ("makespan s", lambda s: f"{s['makespan_s']:.0f}"),
    ("scheduling cycles (answered from an identical pod)",
     lambda s: f"{s['scheduling_attempts']} ({s['attempts_answered_from_identical_pods']})"),
    ("replay wall time s", lambda s: f"{s['seconds']:.1f}"),
)


def _key_table(summaries: Sequence[dict]) -> Table:
    return Table(["", *[s["label"] for s in summaries]], [[name, *[fn(s) for s in summaries]] for name, fn in KEY_ROWS])


def _breakdown(summaries: Sequence[dict], key: str, what: str) -> Table:
    groups = list(dict.fromkeys(g for s in summaries for g in s[key]))
    header = [what] + [f"{s['label']}: p50 / p95 (n)" for s in summaries]
    rows = [[g, *[f"{_triple(s[key].get(g, {}), 'p50', 'p95')} ({s[key].get(g, {}).get('n', 0)})" for s in summaries]]
            for g in groups]
    return Table(header, rows)


def _team_table(summaries: Sequence[dict]) -> Table:
    teams = list(dict.fromkeys(t for s in summaries for t in s["teams"]))
    header = ["team", "guaranteed GPUs"] + [f"{s['label']}: GPUs mean / peak, borrowed mean / peak" for s in summaries]
    rows = []
    for team in teams:
        guaranteed = next((s["teams"][team]["guaranteed_gpus"] for s in summaries if team in s["teams"]), None)
        cells = []
        for s in summaries:
            t = s["teams"].get(team)
            cells.append("–" if t is None else f"{t['gpus_mean']:.1f} / {t['gpus_peak']:.1f}, "
                                               f"{t['borrowed_gpus_mean']:.1f} / {t['borrowed_gpus_peak']:.1f}")
        rows.append([team, "–" if guaranteed is None else f"{guaranteed:g}", *cells])
    return Table(header, rows)


def _time_figures(out: Path, results: Sequence) -> list:
    figures = []
    for column, ylabel in ((1, "GPU allocated (% of all GPUs)"), (2, "GPU fragment (% of all GPUs)"),
                           (3, "pending pods")):
        series = {r.label: ([row[0] / 3600 for row in r.recorder.timeline], [row[column] for row in r.recorder.timeline])
                  for r in results}
        name = TIMELINE_COLUMNS[column]
        path = plots.line_plot(out / "plots" / f"{name}.png", series, xlabel="time (h)", ylabel=ylabel,
                               title=f"{ylabel} over time", step=True)
        figures.append(Figure(path, f"{ylabel} over time"))
    return figures


def _delay_figures(out: Path, summaries: Sequence[dict]) -> list:
    figures = []
    for key, what in (("queue_delay_s_by_team", "team"), ("queue_delay_s_by_size", "job size")):
        groups = list(dict.fromkeys(g for s in summaries for g in s[key]))
        series = {f"{s['label']} p95": [s[key].get(g, {}).get("p95") or 0.0 for g in groups] for s in summaries}
        path = plots.bar_plot(out / "plots" / f"{key}.png", groups, series, ylabel="queueing delay p95 (s)",
                              title=f"queueing delay p95 by {what}")
        figures.append(Figure(path, f"queueing delay (95th percentile) by {what}"))
    return figures


def _team_figures(out: Path, results: Sequence) -> list:
    figures = []
    for r in results:
        teams = r.recorder.teams
        usage = r.recorder.team_usage
        series = {team: ([row[0] / 3600 for row in usage], [row[1 + i] for row in usage]) for i, team in enumerate(teams)}
        levels = {t.name: t.guaranteed_gpus for t in r.scenario.teams}
        path = plots.line_plot(out / "plots" / f"teams-{_slug(r.label)}.png", series, xlabel="time (h)",
                               ylabel="GPUs in use", title=f"{r.label}: GPUs in use per team", step=True, levels=levels)
        figures.append(Figure(path, f"{r.label}: GPUs in use per team (dashed: each team's guarantee)"))
    return figures


def _csvs(folder: Path, result) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rec = result.recorder
    with (folder / "timeline.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*TIMELINE_COLUMNS, *[f"gpus_{t}" for t in rec.teams], *[f"borrowed_{t}" for t in rec.teams]])
        for row, usage in zip(rec.timeline, rec.team_usage, strict=True):
            w.writerow([*(round(v, 3) if isinstance(v, float) else v for v in row),
                        *(round(v, 3) for v in usage[1:])])
    with (folder / "pods.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "job", "team", "gpu_milli", "attempt", "submit_s", "start_s", "end_s", "node", "evicted"])
        for p in rec.pods.values():
            w.writerow([p.uid, p.job, p.team, p.milli, p.attempt, p.submit_s, p.start_s, p.end_s, p.node, p.evicted])
    with (folder / "jobs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job", "team", "size", "width", "gang", "submit_s", "started_s", "finished_s", "evictions"])
        for j in rec.jobs.values():
            w.writerow([j.spec.name, j.spec.team, j.spec.size_class, j.spec.width, j.spec.gang, j.spec.submit_s,
                        j.started_s, j.finished_s, j.evictions])


def _triple(d: dict, *keys: str) -> str:
    return " / ".join("–" if d.get(k) is None else f"{d[k]:.1f}" for k in keys)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
