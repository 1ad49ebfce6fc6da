"""`gpusched serve --cluster FILE`: the extender over a static cluster."""

from __future__ import annotations

import argparse
import asyncio
import logging

from scheduler.cli.errors import UsageError
from scheduler.clusterfile import ClusterFileError, load_cluster
from scheduler.core.engine import EngineSettings
from scheduler.core.policies import DEFAULT_POLICY, POLICIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="FILE", help="static cluster (YAML or JSON), no Kubernetes")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="listen port (default 8888)")
    parser.add_argument("--prefix", default="", help="URL path prefix of the verbs (match urlPrefix)")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES), help="default scoring policy")
    parser.add_argument("--state-file", metavar="PATH", help="keep the books across restarts (--cluster mode)")
    parser.add_argument("--decide-in-filter", action="store_true",
                        help="answer filter with the one best node, so kube-scheduler skips prioritize "
                             "(faster; other score plugins get no say)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def settings_from(args: argparse.Namespace) -> EngineSettings:
    return EngineSettings(policy=args.policy)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.cluster:
        raise UsageError("--cluster FILE is required")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    from scheduler.extender.server import cluster_service, serve_forever
    from scheduler.extender.statefile import StateFileError, StateJournal

    try:
        spec = load_cluster(args.cluster)
        journal = StateJournal(args.state_file) if args.state_file else None
        service = cluster_service(spec, settings=settings_from(args), journal=journal,
                                  decide_in_filter=args.decide_in_filter)
    except (ClusterFileError, StateFileError) as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{args.state_file}: {e.strerror or e}") from None
    try:
        asyncio.run(serve_forever(service, host=args.host, port=args.port, prefix=args.prefix))
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0
