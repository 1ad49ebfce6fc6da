"""`gpusched agent`: the node agent (DESIGN §3, §4), a DaemonSet process on every GPU node.

    gpusched agent [--node NAME] [--fake-nvml FILE] [--once] [--dry-run] [--interval S] [...]

`--dry-run` prints the `gpusched.io/gpus` annotation (pretty JSON) instead of writing it and
talks to no API server; `--once` makes one pass and exits. With `--once`, any failure (no
GPU, no driver, an NVML error, an API error) is one line on stderr and exit code 2. Without
it (the DaemonSet), the agent keeps retrying with backoff, logging each failure and counting
it in `gpusched_node_agent_errors_total{reason}`; only a mistake in its own arguments or
files stops it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime

from scheduler.cli.errors import UsageError

DEFAULT_METRICS_PORT = 9402
DEFAULT_METRICS_ADDR = "127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from scheduler.agent.health import DEFAULT_XID_HOLD_S
    from scheduler.agent.podresources.client import DEFAULT_SOCKET

    parser.add_argument("--node", metavar="NAME", default=os.environ.get("NODE_NAME"),
                        help="this node's name (default: $NODE_NAME, from the downward API)")
    parser.add_argument("--fake-nvml", metavar="FILE", help="read GPUs from a YAML description instead of NVML")
    parser.add_argument("--once", action="store_true", help="one pass, then exit (errors: exit code 2)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the gpusched.io/gpus annotation JSON instead of writing it (no API server)")
    parser.add_argument("--interval", metavar="S", type=float, default=10.0,
                        help="seconds between passes over NVML counters and pods (default 10; XIDs act at once)")
    parser.add_argument("--heartbeat-interval", metavar="S", type=float, default=30.0,
                        help="most seconds between two writes of the node heartbeat (default 30)")
    parser.add_argument("--kubeconfig", metavar="PATH",
                        help="kubeconfig to use (default: in-cluster service account, else ~/.kube/config)")
    parser.add_argument("--unhealthy-xids", metavar="LIST", default="default",
                        help="XIDs that mark a GPU unhealthy, comma-separated; 'default' is 48,63,64,74,79,92,94,95")
    parser.add_argument("--xid-hold", metavar="S", type=float, default=DEFAULT_XID_HOLD_S,
                        help=f"seconds an XID keeps its GPU unhealthy after its last occurrence "
                             f"(default {DEFAULT_XID_HOLD_S:.0f})")
    parser.add_argument("--sharing-strategy", choices=["none", "time-slicing"],
                        help="override the node label nvidia.com/gpu.sharing-strategy (MPS is detected)")
    parser.add_argument("--mps-pipe-dir", metavar="DIR", action="append",
                        help="where an MPS control daemon's pipe may be (repeatable; default: "
                             "$CUDA_MPS_PIPE_DIRECTORY, /tmp/nvidia-mps, /run/nvidia/mps/nvidia.com/gpu/pipe)")
    parser.add_argument("--pod-resources-socket", metavar="PATH", default=DEFAULT_SOCKET,
                        help=f"the kubelet pod-resources socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--no-reconcile", action="store_true",
                        help="publish the inventory only; do not check pods' records against the kubelet")
    parser.add_argument("--phantom-grace", metavar="S", type=float, default=120.0,
                        help="seconds a recorded pod may be missing from the kubelet before it is reported "
                             "(default 120)")
    parser.add_argument("--proc-root", metavar="PATH", default="/proc",
                        help="the host's /proc, to find the pod of a GPU process (default /proc; needs hostPID)")
    parser.add_argument("--metrics-port", metavar="N", type=int, default=DEFAULT_METRICS_PORT,
                        help=f"Prometheus /metrics port (default {DEFAULT_METRICS_PORT}; 0 turns it off)")
    parser.add_argument("--metrics-addr", metavar="ADDR", default=DEFAULT_METRICS_ADDR,
                        help=f"metrics listen address (default {DEFAULT_METRICS_ADDR}: plain HTTP, so only this "
                             f"host; the DaemonSet passes the pod IP, $(POD_IP) from status.podIP)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log verbosity (default info)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from scheduler.agent.exporter import AgentMetrics, serve
    from scheduler.agent.nvml_source import NvmlError
    from scheduler.agent.publisher import KubeError
    from scheduler.agent.runner import Agent

    settings = _settings(args)
    source = _source(args)
    metrics = AgentMetrics(settings.node)
    agent_parts = _cluster_parts(args, settings.node)
    agent = Agent(settings, source=source, metrics=metrics, mps_probe=_mps_probe(args, source),
                  owners=_owners(args, source), clock=time.monotonic, wall=lambda: datetime.now(UTC), **agent_parts)

    if args.once:
        try:
            entries = agent.run_once()
        except (NvmlError, KubeError) as e:
            raise UsageError(str(e)) from None
        if not args.dry_run:
            healthy = sum(1 for e in entries if e["healthy"])
            print(f"node {settings.node}: published {len(entries)} GPU(s), {healthy} healthy", file=sys.stderr)
        return 0

    server = None
    if args.metrics_port:
        try:
            server = serve(metrics, port=args.metrics_port, addr=args.metrics_addr)
        except OSError as e:
            raise UsageError(f"cannot serve metrics on {args.metrics_addr}:{args.metrics_port}: {e.strerror}") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("scheduler.agent").info("agent on node %s: pass every %.0fs, heartbeat every %.0fs",
                                              settings.node, settings.interval_s, args.heartbeat_interval)
    try:
        agent.run_forever(stop.is_set)
    finally:
        if server is not None:
            server.shutdown()
    return 0


def _settings(args: argparse.Namespace):
    from scheduler.agent.health import HealthSettings, parse_xid_list
    from scheduler.agent.runner import AgentSettings

    if args.interval <= 0:
        raise UsageError("--interval must be positive")
    if args.heartbeat_interval < args.interval:
        raise UsageError(f"--heartbeat-interval ({args.heartbeat_interval:g}s) must not be shorter than "
                         f"--interval ({args.interval:g}s): the heartbeat is written by a pass")
    if args.xid_hold <= 0:
        raise UsageError("--xid-hold must be positive (a GPU must be able to come back)")
    if args.phantom_grace < 0:
        raise UsageError("--phantom-grace must not be negative")
    if not 0 <= args.metrics_port <= 65535:
        raise UsageError("--metrics-port must be 0..65535")
    try:
        xids = parse_xid_list(args.unhealthy_xids)
    except ValueError as e:
        raise UsageError(f"--unhealthy-xids: {e}") from None
    node = args.node
    if not node:
        if not args.dry_run:
            raise UsageError("--node is required (or set NODE_NAME, e.g. from the downward API spec.nodeName)")
        node = socket.gethostname()
    return AgentSettings(node=node, interval_s=args.interval, health=HealthSettings(unhealthy_xids=xids,
                                                                                   xid_hold_s=args.xid_hold),
                         phantom_grace_s=args.phantom_grace, sharing_strategy=args.sharing_strategy)


def _source(args: argparse.Namespace):
    if args.fake_nvml:
        from scheduler.agent.fake_nvml import FakeNvml, FakeNvmlError

        try:
            return FakeNvml.from_file(args.fake_nvml)
        except FakeNvmlError as e:
            raise UsageError(str(e)) from None
    from scheduler.agent.nvml_source import PynvmlSource

    return PynvmlSource()


def _mps_probe(args: argparse.Namespace, source):
    from scheduler.agent.fake_nvml import FakeNvml
    from scheduler.agent.mps import PipeDirProbe, default_pipe_dirs

    if isinstance(source, FakeNvml) and not args.mps_pipe_dir:
        return lambda: source.mps_daemon
    return PipeDirProbe(args.mps_pipe_dir or default_pipe_dirs())


def _owners(args: argparse.Namespace, source):
    from scheduler.agent.fake_nvml import FakeNvml
    from scheduler.agent.proc import ProcResolver

    return source if isinstance(source, FakeNvml) else ProcResolver(args.proc_root)


def _cluster_parts(args: argparse.Namespace, node: str) -> dict:
    from scheduler.agent.publisher import ClusterWriter, KubeError, NodePublisher, connect
    from scheduler.agent.runner import PrintSink

    if args.dry_run:
        return {"sink": PrintSink(sys.stdout)}
    try:
        api = connect(args.kubeconfig)
    except KubeError as e:
        raise UsageError(str(e)) from None
    sink = NodePublisher(api, node, heartbeat_s=args.heartbeat_interval)
    parts: dict = {"sink": sink}
    if not args.no_reconcile:
        from scheduler.agent.podresources.client import PodResourcesClient

        parts["writer"] = ClusterWriter(api, node, node_uid=lambda: sink.uid)
        parts["kubelet"] = PodResourcesClient(args.pod_resources_socket)
    return parts
