"""Does a policy tuned on openb hold on cluster shapes it never saw? The default policy against FGD.

    python -m benchmarks.policy_robustness [--traces ../shared/traces] [--seeds 42-51] [--jobs 2]
        [--policies fgd,fgd-plus] [--inventories openb,pai2020] [--pods default,cpu250] [--held-out | --diagnostic]

openb's pod lists (default, gpuspec33, multigpu50, cpu250) under the FGD protocol
(reference/fgd-protocol.md §2.1; `simulator/protocol_fgd.py`, run by `simulator/sweep.py`) on node
inventories of about openb's GPU capacity (`simulator/traces/inventories.py`): (a) openb, (b) PAI
2020 and spot 2026, (c) openb with CPU halved and with models shuffled. The measure is the issue's:
unallocated GPU % at 130 % of capacity arrived, mean ± sd over seeds, and the paired difference to
FGD seed by seed. A cell passes when the candidate's mean is at most one standard error of the
paired difference above FGD's.

`--held-out` runs the inventories kept aside (Helios, openb with CPU doubled, openb halved and
shuffled, PAI with CPU halved) instead and writes them to their own file: they were not looked at
while choosing the policy, so a policy shaped to the cells above alone would show it there.
`--diagnostic` runs inventories made afterwards to test a reading of a held-out loss (openb and PAI
with their CPU spread evenly over their GPUs, openb so spread with less CPU), to
robustness-diagnostic.md. `--fresh` runs inventories made after the policy last changed and before any
run on them (Helios with 64-core servers, spot 2026 with half its CPU, openb with its 8-GPU servers
split in two, half openb and half PAI 2020), to robustness-fresh.md.

Runs are kept in out/robustness/runs.json (one per inventory, pod list, policy, seed) and reused;
`--forget POLICY` drops a policy's runs after its code changed. Writes
benchmarks/results/robustness.md (or robustness-held-out.md); the hand-written part below the marker
is kept. Exits 2 with one line when the public traces are not there.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.machine import describe, write_results
from scheduler.cli.simulate import parse_seeds
from scheduler.core.model import Node
from scheduler.core.policies import DEFAULT_POLICY
from simulator import sweep
from simulator.report.seeds import Spread
from simulator.traces import inventories

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "out" / "robustness"
PODS = ("default", "gpuspec33", "multigpu50", "cpu250")
POD_FILE = "alibaba-gpu-v2023/csv/openb_pod_list_{}.csv"
METRIC = "unallocated_pct_at_130"
CELLS: dict[str, Callable[[Path], list[Node]]] = {
    "openb": inventories.openb, "pai2020": inventories.pai2020, "spot2026": inventories.spot2026,
    "cpu-halved": inventories.cpu_halved, "models-shuffled": inventories.models_shuffled,
}
HELD_OUT: dict[str, Callable[[Path], list[Node]]] = {
    "helios": inventories.helios, "cpu-doubled": inventories.cpu_doubled,
    "halved+shuffled": inventories.halved_and_shuffled, "pai2020-cpu-halved": inventories.pai2020_cpu_halved,
}
DIAGNOSTIC: dict[str, Callable[[Path], list[Node]]] = {
    "openb-even-cpu": inventories.openb_even_cpu, "pai2020-even-cpu": inventories.pai2020_even_cpu,
    "openb-even-cpu-0.85": inventories.openb_even_cpu_085, "openb-even-cpu-0.75": inventories.openb_even_cpu_075,
}
"""Made after the held-out table showed a loss, to test a reading of it: neither tuned on nor held out."""
FRESH: dict[str, Callable[[Path], list[Node]]] = {
    "helios-cpu64": inventories.helios_cpu64, "spot2026-cpu-halved": inventories.spot2026_cpu_halved,
    "openb-split": inventories.openb_split, "openb-pai-mix": inventories.openb_pai_mix,
}
"""Made after fgd-plus became rehearsed, before any run on them, to check it where nothing shaped it."""
SETS = {"tuned": (CELLS, "robustness.md", "inventories it was not tuned on"),
        "held-out": (HELD_OUT, "robustness-held-out.md", "held-out inventories"),
        "diagnostic": (DIAGNOSTIC, "robustness-diagnostic.md", "inventories made to test why it loses"),
        "fresh": (FRESH, "robustness-fresh.md", "inventories made after it was last changed")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument("--seeds", default="42-51")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--policies", default=f"fgd,{DEFAULT_POLICY}", help="FGD first, then the candidate(s)")
    parser.add_argument("--inventories", help="a subset of the inventories, comma-separated")
    parser.add_argument("--pods", default=",".join(PODS), help="openb pod list suffixes, comma-separated")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--held-out", action="store_true", help="the inventories kept aside, to their own file")
    which.add_argument("--diagnostic", action="store_true", help="the inventories made to test a reading of a loss")
    which.add_argument("--fresh", action="store_true", help="the inventories made after the policy last changed")
    parser.add_argument("--forget", action="append", default=[], help="drop this policy's stored runs first")
    args = parser.parse_args()
    missing = [f for f in (*inventories.TRACE_FILES, *(Path(POD_FILE.format(p)) for p in PODS))
               if not (args.traces / f).is_file()]
    if missing:
        print(f"policy_robustness: the public traces are not in {args.traces} ({missing[0]} not found)", file=sys.stderr)
        return 2
    chosen = ("held-out" if args.held_out else "diagnostic" if args.diagnostic else "fresh" if args.fresh
              else "tuned")
    table, file_name, title = SETS[chosen]
    names = args.inventories.split(",") if args.inventories else list(table)
    pods, policies, seeds = args.pods.split(","), args.policies.split(","), parse_seeds(args.seeds)
    runs = stored_runs(forget=set(args.forget))
    for name in names:
        nodes = inventories.write_openb_csv(table[name](args.traces), OUT / "inventories" / f"{name}.csv")
        tasks = [sweep.Task(str(nodes), str(args.traces / POD_FILE.format(p)), policy, seed)
                 for p in pods for policy in policies for seed in seeds if (name, p, policy, seed) not in runs]
        print(f"{name}: {len(tasks)} runs to do", file=sys.stderr)

        def keep(result, name=name) -> None:
            runs[(name, result.trace.removeprefix("openb_pod_list_"), result.policy, result.seed)] = result.summary
            save_runs(runs)

        sweep.run_all(tasks, jobs=args.jobs, on_done=keep)
    out = RESULTS / file_name
    flag = "" if chosen == "tuned" else f" --{chosen}"
    write_report(out, runs, names, pods, policies, seeds, title=title, flag=flag)
    print(f"wrote {out}")
    return 0


def stored_runs(*, forget: set[str]) -> dict[tuple[str, str, str, int], dict]:
    path = OUT / "runs.json"
    if not path.is_file():
        return {}
    runs = {tuple(r["key"]): r["summary"] for r in json.loads(path.read_text())}
    return {k: v for k, v in runs.items() if k[2] not in forget}


def save_runs(runs: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    partial = OUT / "runs.json.partial"  # renamed into place: a run stopped mid-write keeps the last good file
    partial.write_text(json.dumps([{"key": list(k), "summary": v} for k, v in sorted(runs.items())]))
    partial.replace(OUT / "runs.json")


def write_report(out: Path, runs: dict, names: list[str], pods: list[str], policies: list[str], seeds: list[int],
                 *, title: str, flag: str) -> None:
    baseline, candidates = policies[0], policies[1:]
    lines = [f"# The default policy against FGD on {title}", "",
             f"Written by `python -m benchmarks.policy_robustness{flag}`:", "",
             describe(),
             f"openb pod lists under the FGD protocol on node inventories of openb's GPU capacity "
             f"(`simulator/traces/inventories.py` says how each is derived). Unallocated GPU % at 130 % of "
             f"capacity arrived, mean ± sd over seeds {seeds[0]}-{seeds[-1]}; Δ is the candidate minus {baseline}, "
             f"paired seed by seed, ± its standard error; better/worse: seeds on which the candidate leaves "
             f"less/more GPU unallocated. ✓: Δ ≤ one standard error (no worse than {baseline} beyond noise).", ""]
    for candidate in candidates:
        lines += cell_table(runs, names, pods, baseline, candidate, seeds)
    write_results(out, "\n".join(lines), "\n\n## Reading the table\n\n(to be written)\n")


def cell_table(runs: dict, names: list[str], pods: list[str], baseline: str, candidate: str,
               seeds: list[int]) -> list[str]:
    lines = [f"## {candidate} against {baseline}", "",
             f"| inventory | pods | {baseline} | {candidate} | Δ ± se | better / worse seeds | Δ at 100 % | "
             "terms chosen | |",
             "|---|---|---|---|---|---|---|---|---|"]
    passed = total = 0
    for name in names:
        for p in pods:
            base = [runs.get((name, p, baseline, s)) for s in seeds]
            cand = [runs.get((name, p, candidate, s)) for s in seeds]
            pairs = [(c, b) for c, b in zip(cand, base, strict=True) if c and b]
            if not pairs:
                continue
            diff = np.array([c[METRIC] - b[METRIC] for c, b in pairs])
            diff100 = np.array([c["unallocated_pct_at_100"] - b["unallocated_pct_at_100"] for c, b in pairs])
            se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
            ok = float(diff.mean()) <= se
            passed, total = passed + ok, total + 1
            lines.append(f"| {name} | {p} | {Spread(tuple(b[METRIC] for _, b in pairs)).text(2)} | "
                         f"{Spread(tuple(c[METRIC] for c, _ in pairs)).text(2)} | {diff.mean():+.2f} ± {se:.2f} | "
                         f"{int((diff < 0).sum())} / {int((diff > 0).sum())} | {diff100.mean():+.2f} | "
                         f"{chosen(c for c, _ in pairs)} | {'✓' if ok else '✗'} |")
    lines += ["", f"**{candidate} is no worse than {baseline} beyond noise in {passed} of {total} cells.**", "",
              "terms chosen: on how many seeds fgd-plus's rehearsal chose its terms over FGD's order, of the seeds "
              "that played one, and the rehearsal's mean Δ (pp, on the miniature); —: none played (neither term "
              "had anything to say, so fgd-plus was FGD without a rehearsal).", ""]
    return lines


def chosen(summaries) -> str:
    """How many runs' rehearsals chose the terms, of those that played one, and their mean Δ."""
    played = [s for s in summaries if "rehearsal_delta" in s]
    if not played:
        return "—"
    mean = np.mean([s["rehearsal_delta"] for s in played])
    return f"{sum(s['rehearsal_chose_terms'] for s in played)} of {len(played)} ({mean:+.2f})"

if __name__ == "__main__":
    sys.exit(main())
