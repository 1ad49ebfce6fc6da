"""`gpusched demo` (`make demo`): the simulator on the bundled generated workload, through the real
HTTP extender.

The extender is started on loopback (the same aiohttp app `gpusched serve` runs) and driven the
way kube-scheduler drives it: filter, prioritize, bind, for every pod of a generated workload
(400 jobs arriving over about 1.3 h, run times up to 6 h) in a 128-GPU cluster with five teams, gangs, GPU shares, MPS pods and a GPU failure. The same workload
runs under fgd-plus (the default policy) and binpack, side by side, each under several engine seeds
(kube-scheduler's tie-break and the policies' randomness): one run's result is not a policy's, and
the report gives the mean, the spread and the seeds on which one policy beats the other. The
report and plots go to --out, with the `gpusched simulate compare` command that reproduces them.
"""

from __future__ import annotations

import argparse

from scheduler.cli.errors import UsageError

DEMO_POLICIES = "fgd-plus,binpack"
"""The default policy beside the bin-packing most GPU schedulers default to. Not FGD: on this
workload fgd-plus places exactly as FGD (its cluster has CPU to spare and no pod is tied to a GPU
model; benchmarks/results/policies.md), so that pair would show two equal columns."""
DEMO_SEEDS = "42-49"
"""As many engine seeds as keep `make demo` under two minutes on a two-core machine."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", default="out", help="where to write the report (default out)")
    parser.add_argument("--policy", default=DEMO_POLICIES, help=f"policies side by side (default {DEMO_POLICIES})")
    parser.add_argument("--generate", metavar="SEED", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--seeds", metavar="RANGE", default=DEMO_SEEDS,
                        help=f"engine seeds, each policy runs once per seed (default {DEMO_SEEDS})")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes, default 2)")
    parser.add_argument("--in-process", action="store_true", help="call the core directly instead of over HTTP")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console

    from scheduler.cli import simulate_time

    console = Console(stderr=True)
    started = time.perf_counter()
    namespace = argparse.Namespace(mode="compare", policy=args.policy, cluster=None, nodes=None, trace=None,
                                   generate=args.generate, seeds=args.seeds, via_http=not args.in_process,
                                   extender_url=None, out=args.out, quiet=args.quiet, jobs=args.jobs)
    from scheduler.cli.simulate import check_out_dir, parse_seeds

    policies = [p for p in args.policy.split(",") if p]
    if not policies:
        raise UsageError("--policy: at least one policy")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: at least 1")
    parse_seeds(args.seeds)
    check_out_dir(args.out)
    console.print(f"gpusched demo: a generated workload (generator seed {args.generate}) replayed "
                  f"{'in-process' if args.in_process else 'through the real HTTP extender on loopback'}, "
                  f"policies {', '.join(policies)}, engine seeds {args.seeds}")
    if len(policies) == 1:
        namespace.mode = "run"
    code = (simulate_time.compare(namespace) if len(policies) > 1 else simulate_time.replay(namespace))
    console.print(f"done in {time.perf_counter() - started:.0f} s. Open [bold]{args.out}/report.html[/] "
                  f"(or {args.out}/report.md).")
    return code
