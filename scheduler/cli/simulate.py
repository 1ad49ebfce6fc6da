"""`gpusched simulate`: replay workloads through the placement core, in-process or over HTTP.

    gpusched simulate --protocol fgd --nodes NODES.csv --pods PODS.csv --policy fgd,bestfit --seeds 42-51 --out DIR
    gpusched simulate sweep --pods-dir TRACES/csv [--traces default,cpu050] [--policy all] --seeds 42-51 --jobs 2 --out DIR
    gpusched simulate [--trace PODS.csv | --generate SEED] [--nodes NODES.csv | --cluster FILE] --policy fgd --out DIR
    gpusched simulate compare --generate 7 --policy fgd,bestfit [--cluster A.yaml --cluster B.yaml] --out DIR

Add `--via-http` to drive a real extender on loopback instead of calling the core in-process.
This module only parses and reports; the work is in `simulator/`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from scheduler.cli.errors import UsageError
from scheduler.core.policies import POLICIES

MODES = ("run", "sweep", "compare")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode", nargs="?", default="run", choices=MODES,
                        help="run (default): one protocol or time-driven replay; sweep: the FGD traces × policies × "
                             "seeds on a process pool; compare: one workload under several policies or clusters")
    parser.add_argument("--protocol", choices=("fgd", "time"), default="time",
                        help="fgd: the FGD paper's arrival-only experiment; time (default): time-driven replay")
    parser.add_argument("--nodes", metavar="CSV", help="node list (openb, PAI 2020 or spot 2026 format)")
    parser.add_argument("--cluster", metavar="FILE", action="append", help="cluster file (YAML/JSON); repeat in compare")
    parser.add_argument("--pods", metavar="CSV", help="openb pod list (FGD protocol)")
    parser.add_argument("--pods-dir", metavar="DIR", help="folder of openb_pod_list_*.csv (sweep)")
    parser.add_argument("--traces", metavar="NAMES", help="sweep: pod list suffixes, comma-separated (default: the 17 of the paper)")
    parser.add_argument("--trace", metavar="CSV", help="time-driven: an openb pod list replayed by its own timestamps")
    parser.add_argument("--generate", metavar="SEED", type=int, help="time-driven: the bundled seeded workload generator")
    parser.add_argument("--policy", metavar="NAME[,NAME...]", help=f"policies ({', '.join(sorted(POLICIES))}, or all)")
    parser.add_argument("--seeds", metavar="RANGE", help="seeds, e.g. 42-51 or 1,2,3 (default 42)")
    parser.add_argument("--out", metavar="DIR", default="out/simulate", help="output folder (default out/simulate)")
    parser.add_argument("--via-http", action="store_true", help="drive a real extender over HTTP on loopback")
    parser.add_argument("--extender-url", metavar="URL",
                        help="time-driven: drive an extender already running (gpusched serve, same nodes) at URL")
    parser.add_argument("--jobs", type=int, default=1, help="parallel runs (processes) for several runs (default 1)")
    parser.add_argument("--placements", action="store_true",
                        help="FGD protocol: write every pod's node, GPU indices and milli per run "
                             "(placements/TRACE/POLICY-seedN.csv; always for a single run)")
    parser.add_argument("--published", metavar="DIR", help="FGD published results (default: next to the pod lists)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from simulator.traces import TraceError

    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: at least 1")
    if args.generate is not None and (args.protocol == "fgd" or args.mode == "sweep"):
        raise UsageError("--generate makes a time-driven workload; the FGD protocol (--protocol fgd, sweep) "
                         "replays --pods / --pods-dir instead")
    parse_seeds(args.seeds)
    check_out_dir(args.out)
    try:
        if args.mode == "sweep":
            return _sweep(args)
        if args.mode == "compare":
            from scheduler.cli.simulate_time import compare
            return compare(args)
        if args.protocol == "fgd":
            return _fgd(args)
        from scheduler.cli.simulate_time import replay
        return replay(args)
    except TraceError as e:
        raise UsageError(str(e)) from None


def parse_seeds(text: str | None) -> list[int]:
    if not text:
        return [42]
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                low, high = part.split("-", 1)
                if int(high) < int(low):
                    raise UsageError(f"--seeds {text!r}: the range {part.strip()} runs backwards "
                                     f"(write {int(high)}-{int(low)})")
                seeds += range(int(low), int(high) + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected N, N-M or a comma-separated list") from None
    return seeds


def check_out_dir(path: str) -> Path:
    """`--out`, checked before any run: it, or the first of its parents that exists, must be a directory."""
    out = Path(path)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise UsageError(f"--out {path}: {p} is not a directory")
            if not os.access(p, os.W_OK | os.X_OK):
                raise UsageError(f"--out {path}: {p} is not writable")
            break
    return out


def format_seeds(seeds: list[int]) -> str:
    """The shortest `--seeds` text for `seeds` ("42-46", or "1,3,9")."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def parse_policies(text: str | None, *, default: tuple[str, ...]) -> list[str]:
    from simulator.sweep import FGD_POLICIES

    if not text:
        return list(default)
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return list(FGD_POLICIES)
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise UsageError(f"--policy: unknown {', '.join(unknown)} (known: {', '.join(sorted(POLICIES))}, all)")
    return names


def _existing(path: str | None, option: str) -> Path:
    if not path:
        raise UsageError(f"{option} is required")
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file or directory")
    return p


def _fgd(args: argparse.Namespace) -> int:
    from simulator.sweep import Task

    nodes = _existing(args.nodes, "--nodes")
    pods = _existing(args.pods, "--pods")
    policies = parse_policies(args.policy, default=("fgd",))
    seeds = parse_seeds(args.seeds)
    keep = args.placements or len(policies) * len(seeds) == 1
    tasks = [Task(str(nodes), str(pods), p, s, args.via_http, keep) for p in policies for s in seeds]
    return _run_fgd_tasks(args, tasks, title=f"FGD protocol: {pods.stem}", published_near=pods)


def _sweep(args: argparse.Namespace) -> int:
    from simulator.sweep import FGD_POLICIES, FGD_TRACES, Task

    folder = _existing(args.pods_dir, "--pods-dir")
    nodes = Path(args.nodes) if args.nodes else folder / "openb_node_list_gpu_node.csv"
    _existing(str(nodes), "--nodes")
    names = [t.strip() for t in args.traces.split(",")] if args.traces else list(FGD_TRACES)
    files = []
    for name in names:
        path = folder / f"openb_pod_list_{name}.csv"
        if not path.is_file():
            raise UsageError(f"{path}: no such file (trace {name!r})")
        files.append(path)
    policies = parse_policies(args.policy, default=FGD_POLICIES)
    seeds = parse_seeds(args.seeds or "42-51")
    tasks = [Task(str(nodes), str(f), p, s, args.via_http, args.placements) for f in files for p in policies
             for s in seeds]
    return _run_fgd_tasks(args, tasks, title="FGD protocol sweep", published_near=files[0])


def _run_fgd_tasks(args, tasks, *, title: str, published_near: Path) -> int:
    import time

    from rich.console import Console

    from simulator import progress, protocol_fgd, sweep
    from simulator.report import fgd_report, published

    console = Console(stderr=True)
    out = Path(args.out)
    started = time.perf_counter()
    if len(tasks) == 1:
        task = tasks[0]
        nodes, pods = sweep.load_trace(task.nodes, task.pods)
        label = f"{task.trace} {task.policy} seed {task.seed}"
        with progress.bar(f"{label}: pods", None, console=console, quiet=args.quiet) as advance:
            def on_progress(done: int, of: int) -> None:
                advance(0, completed=done, total=of)

            results = [protocol_fgd.run(nodes, pods, trace=task.trace, policy=task.policy, seed=task.seed,
                                        via_http=task.via_http, keep_placements=task.placements,
                                        progress=on_progress)]
            done = results[0]
            advance(1, description=f"{label}: {done.pods} pods, {done.failed} failed, {done.seconds:.1f} s",
                    completed=done.pods, total=done.pods)
    else:
        with progress.bar(f"{len(tasks)} runs", len(tasks), console=console, quiet=args.quiet) as advance:
            results = sweep.run_all(tasks, jobs=max(1, args.jobs),
                                    on_done=lambda r: advance(1, f"{r.trace} {r.policy} seed {r.seed}"))
    wall = time.perf_counter() - started
    folder = Path(args.published) if args.published else published.default_folder(published_near)
    reference = published.load(folder)
    mode = "over HTTP (real extender on loopback)" if args.via_http else "in-process"
    notes = [f"{len(results)} runs, {mode}, {max(1, args.jobs)} process(es), {wall:.0f} s wall clock.",
             "Protocol: reference/fgd-protocol.md §2.1; curves binned as the artifact's analysis scripts."]
    report = fgd_report.write(out, results, published=reference, title=title, notes=notes)
    (out / "timings.json").write_text(json.dumps({"machine": sweep.machine(), "wall_seconds": round(wall, 1),
                                                  "jobs": max(1, args.jobs), "runs": len(results),
                                                  "run_seconds": {f"{r.trace}/{r.policy}/{r.seed}": round(r.seconds, 2)
                                                                  for r in results}}, indent=1) + "\n")
    console.print(f"report: [bold]{report}[/] (also {report.with_suffix('.html')}, summary.json, curves/, plots/)")
    return 0
