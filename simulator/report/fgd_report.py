"""The FGD protocol's outputs: summary.json, one curve CSV per run, plots per trace, and report.md /
report.html comparing every number with the published one (fgd-expected-results)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.curves import POINTS
from simulator.report import plots
from simulator.report.document import Document, Figure, Section, Table
from simulator.report.outputs import clear_previous

FIDELITY_PP = 1.0
"""The target: our mean over seeds within this many percentage points of the published mean."""
POLICY_ORDER = ("random", "dotprod", "clustering", "packing", "bestfit", "fgd")
METRICS = (("unallocated_pct_at_100", "unallocated GPU % at 100 % arrived"),
           ("unallocated_pct_at_130", "unallocated GPU % at 130 % arrived"),
           ("fragment_pct_at_100", "fragment % of capacity at 100 % arrived"))


@dataclass(frozen=True)
class Cell:
    ours: np.ndarray
    published: np.ndarray | None

    @property
    def delta(self) -> float | None:
        if self.published is None or not len(self.published) or not len(self.ours):
            return None
        return float(np.mean(self.ours) - np.mean(self.published))

    @property
    def within(self) -> bool | None:
        d = self.delta
        return None if d is None else abs(d) <= FIDELITY_PP


def published_values(published: Mapping, trace: str, policy: str, metric: str) -> np.ndarray | None:
    entry = published.get((trace, policy))
    if entry is None:
        return None
    if metric == "fragment_pct_at_100":
        return entry["fragment"][:, 100]
    return 100.0 - entry["allocated"][:, 100 if metric.endswith("100") else 130]


def cells(summaries: Sequence[dict], published: Mapping) -> dict[tuple[str, str, str], Cell]:
    grouped: dict[tuple[str, str], list[dict]] = {}
    for s in summaries:
        grouped.setdefault((s["trace"], s["policy"]), []).append(s)
    out = {}
    for (trace, policy), runs in grouped.items():
        for metric, _ in METRICS:
            ours = np.array([r[metric] for r in runs if r[metric] is not None], float)
            out[(trace, policy, metric)] = Cell(ours, published_values(published, trace, policy, metric))
    return out


def write(out: Path, results: Sequence, *, published: Mapping, title: str, notes: Sequence[str] = ()) -> Path:
    """Write every output of a set of FGD runs under `out`; returns the report.md path."""
    out.mkdir(parents=True, exist_ok=True)
    clear_previous(out, OUTPUTS)
    summaries = sorted((r.summary for r in results), key=lambda s: (s["trace"], _policy_rank(s["policy"]), s["seed"]))
    (out / "summary.json").write_text(json.dumps({"runs": summaries}, indent=1) + "\n")
    for r in results:
        _write_curve(out / "curves" / r.trace / f"{r.policy}-seed{r.seed}.csv", r.curve.rows())
        if r.placements:
            _write_placements(out / "placements" / r.trace / f"{r.policy}-seed{r.seed}.csv", r.placements)
    table = cells(summaries, published)
    doc = Document(title, intro=[*notes, *_headline(table)])
    traces = sorted({s["trace"] for s in summaries})
    if len(traces) > 1:
        for metric, label in METRICS[:2]:
            doc.sections.append(Section(f"All traces: {label}", [overview_table(table, traces, metric)]))
    for trace in traces:
        doc.sections.append(_trace_section(out, trace, results, table, published))
    doc.write_markdown(out / "report.md")
    doc.write_html(out / "report.html")
    return out / "report.md"


OUTPUTS = ("summary.json", "report.md", "report.html", "curves", "placements", "plots")
"""What `write` puts in the folder; an earlier run's copies go first, so no stale curve or plot is left."""


def _write_placements(path: Path, placements) -> None:
    """One row per placed pod, in arrival order: the node, the GPU indices it got (space-separated;
    none for a CPU-only pod) and the thousandths of each GPU it holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["pod", "node", "gpu_indices", "gpu_milli"])
        for pod, node, slots, milli in placements:
            writer.writerow([pod, node, " ".join(map(str, slots)), milli])


def overview_table(table: Mapping, traces: Sequence[str], metric: str) -> Table:
    policies = [p for p in POLICY_ORDER if any((t, p, metric) in table for t in traces)]
    rows = []
    for trace in traces:
        row = [_short(trace)]
        for policy in policies:
            cell = table.get((trace, policy, metric))
            row.append(_compact(cell) if cell else "")
        rows.append(row)
    return Table(["trace", *policies], rows)


def _headline(table: Mapping) -> list[str]:
    judged = [c for (_, _, m), c in table.items() if m != "fragment_pct_at_100" and c.within is not None]
    if not judged:
        return ["No published numbers to compare with (fgd-expected-results not found)."]
    hits = sum(1 for c in judged if c.within)
    misses = sorted(((abs(c.delta), c.delta, t, p, m) for (t, p, m), c in table.items()
                     if m != "fragment_pct_at_100" and c.within is False), reverse=True)
    lines = [f"Fidelity (unallocated GPU % at 100 % and 130 % arrived): {hits} of {len(judged)} cells within "
             f"{FIDELITY_PP:g} percentage point of the published mean over seeds."]
    if misses:
        lines.append("Cells outside: " + "; ".join(f"{_short(t)} {p} @{m[-3:]}% ({d:+.2f} pp)"
                                                   for _, d, t, p, m in misses[:20]) + (" …" if len(misses) > 20 else ""))
    return lines


def _trace_section(out: Path, trace: str, results, table: Mapping, published: Mapping) -> Section:
    mine = [r for r in results if r.trace == trace]
    policies = [p for p in POLICY_ORDER if any(r.policy == p for r in mine)]
    policies += sorted({r.policy for r in mine} - set(policies))
    header = ["policy", "seeds"]
    for _, label in METRICS:
        header += [f"{label}: ours", "published", "Δ"]
    rows = []
    for policy in policies:
        row = [policy, str(sum(1 for r in mine if r.policy == policy))]
        for metric, _ in METRICS:
            cell = table[(trace, policy, metric)]
            row += [_mean_sd(cell.ours), _mean_sd(cell.published) if cell.published is not None else "–",
                    f"{cell.delta:+.2f}" + ("" if cell.within or metric == "fragment_pct_at_100" else " ✗")
                    if cell.delta is not None else "–"]
        rows.append(row)
    blocks = [Table(header, rows)]
    for what, key, ylabel in (("allocation", "allocated_pct", "unallocated GPU (%)"),
                              ("fragment", "fragment_pct", "GPU fragment (% of capacity)")):
        runs = {p: np.array([_unalloc(r.curve, key) for r in mine if r.policy == p]) for p in policies}
        pub = {}
        for p in policies:
            entry = published.get((trace, p))
            if entry is not None:
                source = entry["allocated" if key == "allocated_pct" else "fragment"]
                pub[p] = np.nanmedian(100.0 - source if key == "allocated_pct" else source, 0)
        path = plots.band_plot(out / "plots" / f"{_short(trace)}-{what}.png", POINTS, runs, ylabel=ylabel,
                               title=f"{_short(trace)}: {ylabel} (median, 25-75 % band over seeds)",
                               published=pub, xlim=(60, 130))
        blocks.append(Figure(path, f"{_short(trace)} {what}: ours solid with band, published median dashed"))
    return Section(trace, blocks)


def _unalloc(curve, key: str) -> np.ndarray:
    values = getattr(curve, key)
    return 100.0 - values if key == "allocated_pct" else values


def _write_curve(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _mean_sd(values: np.ndarray | None) -> str:
    if values is None or not len(values):
        return "–"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.2f} ± {sd:.2f}"


def _compact(cell: Cell) -> str:
    ours = f"{np.mean(cell.ours):.2f}"
    if cell.published is None:
        return ours
    mark = "" if cell.within else " ✗"
    return f"{ours} / {np.mean(cell.published):.2f} ({cell.delta:+.2f}{mark})"


def _short(trace: str) -> str:
    return trace.removeprefix("openb_pod_list_")


def _policy_rank(policy: str) -> tuple[int, str]:
    return (POLICY_ORDER.index(policy) if policy in POLICY_ORDER else len(POLICY_ORDER), policy)
