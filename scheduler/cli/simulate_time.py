"""`gpusched simulate` in time-driven mode (one run, or `compare`): argument handling and output.

The scenario is `--trace` (an openb pod list with timestamps) or `--generate SEED` (the bundled
generator; the default, seed 7); the cluster is `--nodes` (a trace node list), `--cluster` (a
cluster file) or, with `--generate`, the generator's own. Every label runs once per engine seed
(`--seeds`, default 42) on the same workload; the report states both seeds and the command that
reproduces it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scheduler.cli.errors import UsageError
from scheduler.core.policies import DEFAULT_POLICY

DEFAULT_GENERATOR_SEED = 7


def replay(args: argparse.Namespace) -> int:
    from scheduler.cli.simulate import parse_policies, parse_seeds

    policies = parse_policies(args.policy, default=(DEFAULT_POLICY,))
    if len(policies) > 1:
        raise UsageError("one --policy per run; to put several side by side use `gpusched simulate compare`")
    clusters = _clusters(args)
    if len(clusters) > 1:
        raise UsageError("one cluster per run; to put several side by side use `gpusched simulate compare`")
    _, scenario = _scenario(args, clusters[0][1] if clusters else None)
    _warn_if_sample(args)
    seeds = parse_seeds(args.seeds)
    results = _run_all(args, [(0, policies[0], seed, policies[0]) for seed in seeds])
    return _write(args, results, seeds, title=f"Replay of {scenario.name} with {policies[0]}")


def compare(args: argparse.Namespace) -> int:
    from scheduler.cli.simulate import parse_policies, parse_seeds

    policies = parse_policies(args.policy, default=(DEFAULT_POLICY, "fgd"))
    clusters = _clusters(args) or [("", None)]
    if len(policies) * len(clusters) < 2:
        raise UsageError("compare needs two or more policies (--policy a,b) or cluster files (--cluster X --cluster Y)")
    _, scenario = _scenario(args, clusters[0][1])
    _warn_if_sample(args)
    seeds = parse_seeds(args.seeds)
    runs = [(index, policy, seed, f"{policy} @ {name}" if len(clusters) > 1 else policy)
            for index, (name, _) in enumerate(clusters) for policy in policies for seed in seeds]
    results = _run_all(args, runs)
    labels = list(dict.fromkeys(r.label for r in results))
    return _write(args, results, seeds, title=f"{scenario.name}: " + " vs ".join(labels))


def reproduce_command(args: argparse.Namespace, *, seeds: list[int]) -> str:
    """The `gpusched simulate` command line that gives the same numbers (everything but --out and --jobs)."""
    import shlex

    from scheduler.cli.simulate import format_seeds

    words = ["gpusched", "simulate"] + (["compare"] if args.mode == "compare" else [])
    if args.trace:
        words += ["--trace", args.trace]
    else:
        words += ["--generate", str(DEFAULT_GENERATOR_SEED if args.generate is None else args.generate)]
    for path in args.cluster or []:
        words += ["--cluster", path]
    if args.nodes:
        words += ["--nodes", args.nodes]
    if args.policy:
        words += ["--policy", args.policy]
    words += ["--seeds", format_seeds(seeds)]
    if args.extender_url:
        words += ["--extender-url", args.extender_url]
    elif args.via_http:
        words.append("--via-http")
    return shlex.join(words)


def _warn_if_sample(args: argparse.Namespace) -> None:
    """An openb pod list replays, but its numbers mean little as load: say so once, on stderr and in the report."""
    if args.trace:
        import sys

        from simulator.traces.timeline import SAMPLE_WARNING

        print(f"gpusched simulate: warning: {SAMPLE_WARNING}", file=sys.stderr)


def _clusters(args: argparse.Namespace) -> list[tuple[str, list]]:
    from scheduler.clusterfile import ClusterFileError, load_cluster
    from simulator.traces.nodes import load_nodes

    out = []
    for path in [*(args.cluster or []), *([args.nodes] if args.nodes else [])]:
        p = Path(path)
        if not p.exists():
            raise UsageError(f"{path}: no such file or directory")
        if p.suffix.lower() in (".yaml", ".yml", ".json"):
            try:
                out.append((p.stem, list(load_cluster(p).nodes)))
            except ClusterFileError as e:
                raise UsageError(str(e)) from None
        else:
            out.append((p.stem, load_nodes(p)))
    return out


def _scenario(args: argparse.Namespace, nodes):
    from simulator.generator import generate

    if args.trace and args.generate is not None:
        raise UsageError("--trace and --generate cannot be used together")
    if args.trace:
        from simulator.traces.alibaba import load_pods
        from simulator.traces.timeline import openb_scenario

        if not Path(args.trace).exists():
            raise UsageError(f"{args.trace}: no such file or directory")
        if nodes is None:
            raise UsageError("--trace needs a cluster: --nodes NODES.csv or --cluster FILE")
        return nodes, openb_scenario(load_pods(args.trace), path=args.trace)
    seed = DEFAULT_GENERATOR_SEED if args.generate is None else args.generate
    try:
        return generate(seed, nodes=nodes)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _run_all(args, runs: list[tuple]) -> list:
    """Each (cluster index, policy, seed, label), in order; on `--jobs N` processes when N > 1 (each
    process rebuilds the workload from the arguments: nodes hold read-only mappings, which do not pickle)."""
    jobs = getattr(args, "jobs", 1) or 1
    if jobs <= 1 or len(runs) == 1:
        inputs = _inputs(args)
        return [_run(args, *inputs[index], policy, seed, label=label, step=(i, len(runs)))
                for i, (index, policy, seed, label) in enumerate(runs, 1)]
    from concurrent.futures import ProcessPoolExecutor

    from simulator import progress

    with progress.bar(f"{len(runs)} runs on {jobs} processes", len(runs), quiet=args.quiet) as advance, \
            ProcessPoolExecutor(max_workers=min(jobs, len(runs))) as pool:
        futures = [pool.submit(_detached_run, args, *run) for run in runs]
        results = []
        for future in futures:  # in submission order: the report lists labels and seeds as asked
            results.append(future.result())
            advance(1, description=f"{results[-1].label} seed {results[-1].seed}: "
                                   f"{results[-1].seconds:.1f} s in its process")
    return results


def _inputs(args) -> list[tuple]:
    """(nodes, scenario) per cluster of the arguments (one when no cluster file is given)."""
    clusters = _clusters(args) or [("", None)]
    nodes, scenario = _scenario(args, clusters[0][1])
    return [(cluster if cluster is not None else nodes, scenario) for _, cluster in clusters]


def _detached_run(args, index: int, policy: str, seed: int, label: str):
    from simulator import replay

    nodes, scenario = _inputs(args)[index]
    return replay.run(nodes, scenario, policy=policy, seed=seed, via_http=args.via_http,
                      extender_url=getattr(args, "extender_url", None), label=label).detached()


def _run(args, nodes, scenario, policy: str, seed: int, *, label: str, step: tuple[int, int] = (1, 1)):
    """One replay, with a bar that moves with its events (a spinner until the replay knows how many)."""
    from simulator import progress, replay

    url = getattr(args, "extender_url", None)
    mode = f"via {url}" if url else "over HTTP" if args.via_http else "in-process"
    label_seed = f"{label} seed {seed}"
    with progress.bar(f"{label_seed}: {mode}", None, quiet=args.quiet, step=step) as advance:
        seen = [0]

        def on_progress(done: int, total: int) -> None:
            advance(0, completed=done, total=total)
            seen[0] = done

        try:
            result = replay.run(nodes, scenario, policy=policy, seed=seed, via_http=args.via_http,
                                extender_url=url, label=label, progress=on_progress)
        except (OSError, ValueError) as e:  # an unreachable or mismatched external extender
            if not url:
                raise
            raise UsageError(f"--extender-url {url}: {str(e).splitlines()[0]}") from None
        advance(1, description=f"{label_seed}: {seen[0]} events, {result.seconds:.1f} s {mode}",
                completed=seen[0], total=seen[0])
    return result


def _write(args, results, seeds: list[int], *, title: str) -> int:
    from rich.console import Console

    from simulator.report import replay_report

    url = getattr(args, "extender_url", None)
    mode = (f"through the extender at {url}" if url else "through the real HTTP extender on loopback"
            if args.via_http else "in-process (the core's calls, no HTTP)")
    report = replay_report.write(Path(args.out), results, title=title, notes=[f"Scheduled {mode}."],
                                 generator_seed=None if args.trace else
                                 DEFAULT_GENERATOR_SEED if args.generate is None else args.generate,
                                 command=reproduce_command(args, seeds=seeds))
    Console(stderr=True).print(f"report: [bold]{report}[/] (and {report.with_suffix('.html')}, "
                               "summary.json, runs/*/*.csv, plots/)")
    return 0
