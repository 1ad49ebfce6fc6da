"""`gpusched simulate` in time-driven mode (one run, or `compare`): argument handling and output.

The scenario is `--trace` (an openb pod list with timestamps) or `--generate SEED` (the bundled
generator; the default, seed 7); the cluster is `--nodes` (a trace node list), `--cluster` (a
cluster file) or, with `--generate`, the generator's own.
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
    nodes, scenario = _scenario(args, clusters[0][1] if clusters else None)
    seed = parse_seeds(args.seeds)[0]
    result = _run(args, nodes, scenario, policies[0], seed, label=policies[0])
    return _write(args, [result], title=f"Replay of {scenario.name} with {policies[0]}")


def compare(args: argparse.Namespace) -> int:
    from scheduler.cli.simulate import parse_policies, parse_seeds

    policies = parse_policies(args.policy, default=(DEFAULT_POLICY, "fgd"))
    clusters = _clusters(args) or [("", None)]
    if len(policies) * len(clusters) < 2:
        raise UsageError("compare needs two or more policies (--policy a,b) or cluster files (--cluster X --cluster Y)")
    nodes, scenario = _scenario(args, clusters[0][1])
    seed = parse_seeds(args.seeds)[0]
    results = []
    for name, cluster in clusters:
        for policy in policies:
            label = f"{policy} @ {name}" if len(clusters) > 1 else policy
            results.append(_run(args, cluster if cluster is not None else nodes, scenario, policy, seed, label=label))
    return _write(args, results, title=f"{scenario.name}: " + " vs ".join(r.label for r in results))


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


def _run(args, nodes, scenario, policy: str, seed: int, *, label: str):
    from simulator import progress, replay

    url = getattr(args, "extender_url", None)
    mode = f"via {url}" if url else "over HTTP" if args.via_http else "in-process"
    with progress.bar(f"{label}: replaying {scenario.name} {mode}", 1, quiet=args.quiet) as advance:
        seen = [0]

        def on_progress(done: int, total: int) -> None:
            advance(0, description=f"{label}: {done}/{total} events {mode}")
            seen[0] = done

        try:
            result = replay.run(nodes, scenario, policy=policy, seed=seed, via_http=args.via_http,
                                extender_url=url, label=label, progress=on_progress)
        except (OSError, ValueError) as e:  # an unreachable or mismatched external extender
            if not url:
                raise
            raise UsageError(f"--extender-url {url}: {str(e).splitlines()[0]}") from None
        advance(1, description=f"{label}: {seen[0]} events, {result.seconds:.1f} s {mode}")
    return result


def _write(args, results, *, title: str) -> int:
    from rich.console import Console

    from simulator.report import replay_report

    url = getattr(args, "extender_url", None)
    mode = (f"through the extender at {url}" if url else "through the real HTTP extender on loopback"
            if args.via_http else "in-process (the core's calls, no HTTP)")
    report = replay_report.write(Path(args.out), results, title=title, notes=[f"Scheduled {mode}."])
    Console(stderr=True).print(f"report: [bold]{report}[/] (and {report.with_suffix('.html')}, "
                               "summary.json, runs/*/*.csv, plots/)")
    return 0
