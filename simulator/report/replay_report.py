"""Outputs of time-driven replays: summary.json, CSVs (timeline, pods, jobs), PNG plots and
report.md / report.html. One label or several side by side (`compare`), each run under one or
more engine seeds on the same workload.

A label's result is the mean over its engine seeds with the standard deviation (tables) or the
25–75 % band (curves); the report names the generator seed and every engine seed, compares labels
seed by seed (`seeds.paired`) and prints the command that reproduces it. With one engine seed the
report says it shows a single run, not a policy's result.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from simulator.metrics import TIMELINE_COLUMNS
from simulator.report import replay_figures
from simulator.report.document import Document, Section, Table
from simulator.report.outputs import clear_previous
from simulator.report.seeds import Spread, paired

FRAGMENT_DEFINITION = (
    "Fragment (FGD's definition): the GPU capacity that the scenario's typical pods cannot use: for each GPU "
    "and each typical pod shape, the free share that a pod of that shape could not be placed on, weighted by how "
    "often the shape occurs; shown as % of all GPUs. Allocation is the share of all GPUs' compute that is bound.")

# (row name, value of one run's summary, digits, lower is better: True / False / None for not compared)
Metric = tuple[str, Callable[[dict], float | None], int, bool | None]
METRICS: tuple[Metric, ...] = (
    ("jobs completed", lambda s: s["jobs_completed"], 1, False),
    ("jobs never started", lambda s: s["jobs_never_started"], 1, True),
    ("GPU allocation % while arriving", lambda s: s["gpu_allocation_pct"]["mean_while_arriving"], 1, False),
    ("GPU allocation % (whole run)", lambda s: s["gpu_allocation_pct"]["mean"], 1, False),
    ("GPU allocation % (peak)", lambda s: s["gpu_allocation_pct"]["peak"], 1, None),
    ("GPU fragment % of capacity while arriving", lambda s: s["fragment_pct"]["mean_while_arriving"], 1, True),
    ("GPU fragment % of capacity (whole run)", lambda s: s["fragment_pct"]["mean"], 1, True),
    ("queueing delay p50 s", lambda s: s["queue_delay_s"]["p50"], 1, True),
    ("queueing delay p95 s", lambda s: s["queue_delay_s"]["p95"], 1, True),
    ("queueing delay mean s", lambda s: s["queue_delay_s"]["mean"], 1, True),
    ("job completion time p95 s", lambda s: s["job_completion_s"]["p95"], 1, True),
    ("job completion time mean s", lambda s: s["job_completion_s"]["mean"], 1, True),
    ("gang wait p95 s", lambda s: s["gang_wait_s"]["p95"], 1, True),
    ("evictions", lambda s: sum(s["evictions"].values()), 1, True),
    ("makespan s", lambda s: s["makespan_s"], 0, True),
    ("scheduling cycles", lambda s: s["scheduling_attempts"], 0, None),
    ("replay wall time s", lambda s: s["seconds"], 1, None),
)
PER_SEED = ("GPU allocation % while arriving", "GPU fragment % of capacity while arriving", "queueing delay p95 s",
            "queueing delay mean s", "job completion time p95 s", "evictions")


def write(out: Path, results: Sequence, *, title: str, notes: Sequence[str] = (), generator_seed: int | None = None,
          command: str = "") -> Path:
    """Every output into `out`. `results` hold each label's runs in seed order, labels in the order given."""
    out.mkdir(parents=True, exist_ok=True)
    clear_previous(out, OUTPUTS)
    groups = _groups(results)
    summaries = {label: [r.summary for r in rs] for label, rs in groups.items()}
    seeds = [r.seed for r in next(iter(groups.values()))]
    comparisons = _comparisons(summaries)
    (out / "summary.json").write_text(json.dumps({
        "generator_seed": generator_seed, "engine_seeds": seeds, "command": command,
        "labels": {label: {name: _spread(runs, fn).as_dict() for name, fn, _, _ in METRICS}
                   for label, runs in summaries.items()},
        "paired": [{"metric": name, **p.as_dict()} for name, p in comparisons],
        "runs": [r.summary for rs in groups.values() for r in rs]}, indent=1) + "\n")
    for r in results:
        _csvs(out / "runs" / _slug(r.label) / f"seed-{r.seed}", r)
    scenario = results[0].scenario
    doc = Document(title, intro=[*scenario.notes, *notes, _seed_sentence(generator_seed, seeds)])
    if command:
        doc.intro += ["To reproduce these numbers (add --out DIR, and --jobs N to run them in parallel):", f"`{command}`"]
    doc.sections.append(Section("Key numbers", [_key_table(summaries, seeds), FRAGMENT_DEFINITION]))
    if comparisons:
        doc.sections.append(Section("Policies compared seed by seed", _paired_blocks(comparisons, len(seeds))))
    if len(seeds) > 1:
        doc.sections.append(Section("Every run", [_per_seed_table(summaries)]))
    doc.sections.append(Section("Over time", replay_figures.time_figures(out, groups)))
    doc.sections.append(Section("Queueing delay by team and by job size", [
        _breakdown(summaries, "queue_delay_s_by_team", "team"), _breakdown(summaries, "queue_delay_s_by_size", "job size"),
        *replay_figures.delay_figures(out, summaries)]))
    doc.sections.append(Section("Teams: quota use and borrowing", [
        "GPUs in use per team, time-weighted; borrowed: the part of a team's use above its guarantee "
        "(the pods reclaim may evict). Means over the engine seeds.",
        _team_table(summaries), *replay_figures.team_figures(out, groups, _slug)]))
    evictions = sorted({k for runs in summaries.values() for s in runs for k in s["evictions"]})
    if evictions:
        doc.sections.append(Section("Evictions (mean over the engine seeds)", [Table(
            ["team / cause", *summaries],
            [[k, *[_spread(runs, lambda s, k=k: s["evictions"].get(k, 0)).text() for runs in summaries.values()]]
             for k in evictions])]))
    doc.sections.append(Section("Files", [
        "summary.json (every number above, per run and per label), runs/<label>/seed-<engine seed>/timeline.csv, "
        "pods.csv, jobs.csv, plots/*.png."]))
    doc.write_markdown(out / "report.md")
    doc.write_html(out / "report.html")
    return out / "report.md"


OUTPUTS = ("summary.json", "report.md", "report.html", "runs", "plots")
"""What `write` puts in the folder; an earlier run's copies go first, so no stale label or plot is left."""


def _groups(results: Sequence) -> dict[str, list]:
    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(r.label, []).append(r)
    return groups


def _seed_sentence(generator_seed: int | None, seeds: Sequence[int]) -> str:
    workload = (f"Generator seed {generator_seed} (the workload, the same for every run)" if generator_seed is not None
                else "The workload is the trace itself (no generator seed)")
    if len(seeds) == 1:
        return (f"{workload}; engine seed {seeds[0]} (kube-scheduler's tie-break and the policies' randomness): "
                "one run per policy, so each column is a single run, not a policy's result; "
                "add --seeds 1-5 to see how much the engine seed moves it.")
    return (f"{workload}; engine seeds {', '.join(map(str, seeds))} (kube-scheduler's tie-break and the policies' "
            f"randomness), each policy run once per engine seed. Numbers are the mean ± standard deviation over "
            f"{len(seeds)} engine seeds; curves the mean with the 25–75 % band.")


def _spread(runs: Sequence[dict], fn) -> Spread:
    return Spread(tuple(float(v) for v in (fn(s) for s in runs) if v is not None))


def _header(summaries: dict, seeds: Sequence[int]) -> list[str]:
    return ["", *[label if len(seeds) > 1 else f"{label} (engine seed {seeds[0]})" for label in summaries]]


def _key_table(summaries: dict, seeds: Sequence[int]) -> Table:
    return Table(_header(summaries, seeds), [[name, *[_spread(runs, fn).text(digits) for runs in summaries.values()]]
                                             for name, fn, digits, _ in METRICS])


def _comparisons(summaries: dict) -> list[tuple[str, object]]:
    """The first label against each other one, metric by metric, on the seeds where both have a value."""
    labels = list(summaries)
    out = []
    for other in labels[1:]:
        for name, fn, _, lower_better in METRICS:
            if lower_better is None:
                continue
            pairs = [(fn(a), fn(b)) for a, b in zip(summaries[labels[0]], summaries[other], strict=True)]
            pairs = [(float(x), float(y)) for x, y in pairs if x is not None and y is not None]
            if pairs:
                out.append((name, paired(labels[0], Spread(tuple(x for x, _ in pairs)), other,
                                         Spread(tuple(y for _, y in pairs)), lower_better=lower_better)))
    return out


def _paired_blocks(comparisons, n_seeds: int) -> list:
    rows = [[name, p.b, f"{p.mean:+.1f}", p.sentence()] for name, p in comparisons]
    blocks: list = [f"Differences are {comparisons[0][1].a} minus the other policy, engine seed by engine seed, "
                    f"averaged over the {n_seeds} seed(s).",
                    Table(["", "against", "mean difference", "seed by seed"], rows)]
    worse = [f"{name} against {p.b}: {p.sentence()}" for name, p in comparisons if p.worse_on_average]
    if worse:
        blocks.append(f"Where {comparisons[0][1].a} is worse on average: " + "; ".join(worse) + ".")
    return blocks


def _per_seed_table(summaries: dict) -> Table:
    metrics = [m for m in METRICS if m[0] in PER_SEED]
    rows = [[label, str(s["seed"]), *["–" if fn(s) is None else f"{fn(s):.{d}f}" for _, fn, d, _ in metrics]]
            for label, runs in summaries.items() for s in runs]
    return Table(["policy", "engine seed", *[m[0] for m in metrics]], rows)


def _breakdown(summaries: dict, key: str, what: str) -> Table:
    groups = list(dict.fromkeys(g for runs in summaries.values() for s in runs for g in s[key]))
    header = [what] + [f"{label}: p50 / p95 (n)" for label in summaries]
    rows = [[g, *[f"{_spread(runs, lambda s, g=g: s[key].get(g, {}).get('p50')).text()} / "
                  f"{_spread(runs, lambda s, g=g: s[key].get(g, {}).get('p95')).text()} "
                  f"({runs[0][key].get(g, {}).get('n', 0)})" for runs in summaries.values()]]
            for g in groups]
    return Table(header, rows)


def _team_table(summaries: dict) -> Table:
    teams = list(dict.fromkeys(t for runs in summaries.values() for s in runs for t in s["teams"]))
    header = ["team", "guaranteed GPUs"] + [f"{label}: GPUs mean / peak, borrowed mean / peak" for label in summaries]
    rows = []
    for team in teams:
        guaranteed = next((s["teams"][team]["guaranteed_gpus"] for runs in summaries.values() for s in runs
                           if team in s["teams"]), None)
        cells = []
        for runs in summaries.values():
            present = [s["teams"][team] for s in runs if team in s["teams"]]
            cells.append("–" if not present else ", ".join(
                " / ".join(_spread(present, lambda t, k=k: t[k]).text() for k in pair)
                for pair in (("gpus_mean", "gpus_peak"), ("borrowed_gpus_mean", "borrowed_gpus_peak"))))
        rows.append([team, "–" if guaranteed is None else f"{guaranteed:g}", *cells])
    return Table(header, rows)


def _csvs(folder: Path, result) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rec = result.recorder
    with (folder / "timeline.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*TIMELINE_COLUMNS, *[f"gpus_{t}" for t in rec.teams], *[f"borrowed_{t}" for t in rec.teams]])
        for row, usage in zip(rec.timeline, rec.team_usage, strict=True):
            w.writerow([*(_r(v) for v in row), *(_r(v) for v in usage[1:])])
    with (folder / "pods.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "job", "team", "gpu_milli", "attempt", "submit_s", "start_s", "end_s", "node", "evicted"])
        for p in rec.pods.values():
            w.writerow([p.uid, p.job, p.team, p.milli, p.attempt, _r(p.submit_s), _r(p.start_s), _r(p.end_s), p.node,
                        p.evicted])
    with (folder / "jobs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job", "team", "size", "width", "gang", "submit_s", "started_s", "finished_s", "evictions"])
        for j in rec.jobs.values():
            w.writerow([j.spec.name, j.spec.team, j.spec.size_class, j.spec.width, j.spec.gang, _r(j.spec.submit_s),
                        _r(j.started_s), _r(j.finished_s), j.evictions])


def _r(value):
    """Floats to 3 decimals (a millisecond, a thousandth of a GPU): float sums print as 2781.9000000000005."""
    return round(value, 3) if isinstance(value, float) else value


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
