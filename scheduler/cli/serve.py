"""`gpusched serve`: the extender over a static cluster (`--cluster FILE`) or a live one
(`--kubeconfig PATH` | `--in-cluster`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import socket
import time

from scheduler.cli.errors import UsageError
from scheduler.clusterfile import ClusterFileError, load_cluster
from scheduler.configfile import ConfigError, GatesConfig, load_config, parse_config
from scheduler.core.engine import EngineSettings
from scheduler.core.policies import DEFAULT_POLICY, POLICIES

_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="FILE", help="static cluster (YAML or JSON), no Kubernetes")
    parser.add_argument("--kubeconfig", metavar="PATH", help="a live cluster, through this kubeconfig")
    parser.add_argument("--in-cluster", action="store_true", help="a live cluster, as the pod's service account")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address of the verbs (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8888, help="listen port of the verbs (default 8888)")
    parser.add_argument("--prefix", default="", help="URL path prefix of the verbs (match urlPrefix)")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES), help="default scoring policy")
    parser.add_argument("--state-file", metavar="PATH", help="keep the books across restarts (--cluster mode)")
    parser.add_argument("--decide-in-filter", action="store_true",
                        help="answer filter with the one best node, so kube-scheduler skips prioritize "
                             "(faster; other score plugins get no say)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the policies' tie-breaks (fgd-plus's node order, random's draws; default 0)")
    parser.add_argument("--virtual-clock", action="store_true",
                        help="--cluster only: time is what a simulation says (POST /clock, /pending), "
                             "for `gpusched simulate --extender-url`")
    parser.add_argument("--config", metavar="FILE", help="teams, quota unit, model weights, gang settings (YAML)")
    parser.add_argument("--body-timeout", type=float, metavar="SECONDS",
                        help="a request body must arrive within this, else 408 and the connection closes (default 5)")
    parser.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                        help="close a connection idle, or stuck in its headers, this long (default 75)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log verbosity (default info)")
    live = parser.add_argument_group("live cluster (--kubeconfig / --in-cluster)")
    live.add_argument("--scheduler-name", default="gpu-scheduler", help="pods' spec.schedulerName (default gpu-scheduler)")
    live.add_argument("--webhook-host", default="0.0.0.0", help="listen address of webhook, probes, metrics")
    live.add_argument("--webhook-port", type=int, help="serve the admission webhook, probes and metrics here (TLS)")
    live.add_argument("--tls-cert", metavar="FILE", help="webhook serving certificate (PEM)")
    live.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    live.add_argument("--share-runtime-class", default="", metavar="NAME",
                      help="runtimeClassName the webhook gives share pods that have none (the NVIDIA runtime)")
    live.add_argument("--agent-staleness", type=float, default=120.0, metavar="SECONDS",
                      help="a node whose agent heartbeat is older takes no new pods (default 120)")
    live.add_argument("--lease-name", default="gpu-extender", help="Lease electing the replica that reclaims")
    live.add_argument("--lease-namespace", help="its namespace (default: the pod's, else gpu-system)")
    live.add_argument("--identity", help="this replica's name in the Lease (default: POD_NAME, else host name)")
    live.add_argument("--lease-duration", type=float, default=15.0, metavar="SECONDS",
                      help="how long a leader's Lease holds without renewal (default 15)")
    live.add_argument("--no-leader-election", action="store_true", help="never reclaim (a single read-only replica)")


def settings_from(args: argparse.Namespace) -> EngineSettings:
    """A cluster's extender plays fgd-plus's rehearsals off the scheduling path; a simulation's
    (`--virtual-clock`) plays them in place, so it places as the simulator in-process does."""
    return EngineSettings(policy=args.policy, seed=args.seed, rehearse_off_path=not args.virtual_clock)


def limits_from(args: argparse.Namespace):
    """The listeners' deadlines for slow clients (`slow_clients.HttpLimits`, imported only to serve)."""
    from scheduler.extender.slow_clients import HttpLimits

    given = {"body_timeout_s": (args.body_timeout, "--body-timeout"),
             "idle_timeout_s": (args.idle_timeout, "--idle-timeout")}
    for value, flag in given.values():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} must be a positive number of seconds, got {value:g}")
    return HttpLimits(**{name: value for name, (value, _) in given.items() if value is not None})


def gates_from(args: argparse.Namespace, sections) -> GatesConfig:
    """Teams and gang settings: the cluster file's sections, then `--config FILE` on top."""
    try:
        base = parse_config(sections)
    except ConfigError as e:
        raise ConfigError(f"{args.cluster}: {e}") from None
    return load_config(args.config, base) if args.config else base


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    live = bool(args.kubeconfig) or args.in_cluster
    if args.cluster and live:
        raise UsageError("--cluster is a static cluster; it cannot be combined with --kubeconfig or --in-cluster")
    if args.kubeconfig and args.in_cluster:
        raise UsageError("give --kubeconfig PATH or --in-cluster, not both")
    if not args.cluster and not live:
        raise UsageError("--cluster FILE, --kubeconfig PATH or --in-cluster is required")
    for flag, port in (("--port", args.port), ("--webhook-port", args.webhook_port)):
        if port is not None and not 0 <= port <= 65535:
            raise UsageError(f"{flag} {port} is not a TCP port")
    limits = limits_from(args)
    if args.virtual_clock and (live or args.state_file):
        raise UsageError("--virtual-clock is for a simulation's --cluster extender; "
                         "it cannot be combined with --state-file, --kubeconfig or --in-cluster")
    if live:
        return _run_live(args, limits)
    from scheduler.extender.server import cluster_service, listen, serve_forever
    from scheduler.extender.statefile import StateFileError, StateJournal

    # 1. read-only inputs; 2. the port; 3. the state file's lock; only then 4. the state file is
    # read and rewritten: a second server (busy port, or the same file) exits 2 before step 4.
    try:
        spec = load_cluster(args.cluster)
        gates = gates_from(args, spec.sections)
    except (ClusterFileError, ConfigError) as e:
        raise UsageError(str(e)) from None
    try:
        sockets = listen(args.host, args.port)
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    journal = StateJournal(args.state_file) if args.state_file else None
    try:
        if journal is not None:
            journal.lock()
        service = cluster_service(spec, settings=settings_from(args), journal=journal,
                                  decide_in_filter=args.decide_in_filter, gates=gates,
                                  clock=None if args.virtual_clock else time.time)
    except StateFileError as e:
        _close(sockets, journal)
        raise UsageError(str(e)) from None
    except OSError as e:
        _close(sockets, journal)
        raise UsageError(f"{args.state_file}: {e.strerror or e}") from None
    try:
        asyncio.run(serve_forever(service, host=args.host, port=args.port, prefix=args.prefix, sockets=sockets,
                                  limits=limits, simulated_time=args.virtual_clock))
    finally:
        _close(sockets, journal)
    return 0


def _close(sockets, journal) -> None:
    for sock in sockets:
        sock.close()
    if journal is not None:
        journal.close()


def _run_live(args: argparse.Namespace, limits) -> int:
    from datetime import timedelta

    from scheduler.extender.tls import TlsError, server_context
    from scheduler.kube.client import KubeClient, KubeConfigError, load_configuration
    from scheduler.kube.leader import LeaseSettings
    from scheduler.kube.runtime import KubeExtender, KubeServeSettings

    if args.state_file:
        raise UsageError("--state-file is for --cluster; in a cluster the pods' annotations are the record")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("give --tls-cert and --tls-key together")
    if args.tls_cert and args.webhook_port is None:
        raise UsageError("--tls-cert needs --webhook-port (where the webhook listens)")
    if args.webhook_port is not None and not args.tls_cert:
        raise UsageError("the API server calls admission webhooks only over HTTPS: give --tls-cert and --tls-key")
    if args.agent_staleness <= 0:
        raise UsageError("--agent-staleness must be positive")
    if args.tls_cert:
        try:
            server_context(args.tls_cert, args.tls_key)
        except TlsError as e:
            raise UsageError(str(e)) from None
    identity = args.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    lease = None
    if not args.no_leader_election:
        try:
            lease = LeaseSettings(name=args.lease_name, namespace=args.lease_namespace or _own_namespace(),
                                  identity=identity, lease_duration_s=args.lease_duration,
                                  renew_deadline_s=args.lease_duration * 2 / 3,
                                  retry_period_s=args.lease_duration * 2 / 15)
        except ValueError as e:
            raise UsageError(f"--lease-duration: {e}") from None
    try:
        configuration = load_configuration(kubeconfig=args.kubeconfig, in_cluster=args.in_cluster,
                                           context=args.context)
    except KubeConfigError as e:
        raise UsageError(str(e)) from None
    settings = KubeServeSettings(
        scheduler_name=args.scheduler_name, host=args.host, port=args.port, prefix=args.prefix,
        webhook_host=args.webhook_host, webhook_port=args.webhook_port, tls_cert=args.tls_cert or "",
        tls_key=args.tls_key or "", share_runtime_class=args.share_runtime_class,
        staleness=timedelta(seconds=args.agent_staleness), lease=lease, identity=identity,
        decide_in_filter=args.decide_in_filter, http=limits)
    try:
        gates = load_config(args.config) if args.config else GatesConfig()
    except ConfigError as e:
        raise UsageError(str(e)) from None
    extender = KubeExtender(KubeClient(configuration), settings=settings, engine_settings=settings_from(args),
                            gates=gates)
    try:
        asyncio.run(extender.serve_forever())
    except OSError as e:
        raise UsageError(f"cannot listen: {e.strerror or e}") from None
    return 0


def _own_namespace() -> str:
    namespace = os.environ.get("POD_NAMESPACE")
    if namespace:
        return namespace
    try:
        with open(_SA_NAMESPACE) as f:
            return f.read().strip() or "gpu-system"
    except OSError:
        return "gpu-system"
