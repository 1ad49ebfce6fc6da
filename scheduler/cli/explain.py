"""`gpusched explain --cluster FILE [--config FILE] --pod POD.yaml`: per node, does the pod fit,
its score, and why.

The engine is the one `serve --cluster` starts with (the file's nodes, running pods, teams and
podGroups, `--config` on top), and the pod goes through the filter verb first, as kube-scheduler
would send it: so gang and team-quota rejections read exactly as the extender would answer them.
The engine is thrown away afterwards, so what the filter remembers (a gang member, a reservation
for a gang that is complete with this pod) changes nothing outside this process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from scheduler.cli.errors import UsageError
from scheduler.cli.serve import gates_from
from scheduler.clusterfile import ClusterFileError, load_cluster
from scheduler.configfile import ConfigError
from scheduler.core.engine import Engine, EngineSettings, NodeVerdict
from scheduler.core.policies import DEFAULT_POLICY, POLICIES
from scheduler.core.request import InvalidRequest, PodRequest, parse_pod
from scheduler.extender.server import cluster_engine
from scheduler.extender.wire import scale_scores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="FILE", required=True, help="cluster file (YAML or JSON)")
    parser.add_argument("--pod", metavar="POD.yaml", required=True, help="the pod manifest to place")
    parser.add_argument("--config", metavar="FILE", help="teams, quota unit, model weights, gang settings (YAML), "
                                                           "on top of the cluster file's, as for serve")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES), help="default scoring policy")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def load_pod(path: str) -> dict:
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    pods = [d for d in docs if isinstance(d, dict) and d.get("kind", "Pod") == "Pod"]
    if len(pods) != 1:
        raise UsageError(f"{path}: expected exactly one Pod, found {len(pods)}")
    pod = pods[0]
    pod.setdefault("metadata", {}).setdefault("uid", "explain")
    return pod


def run(args: argparse.Namespace) -> int:
    try:
        spec = load_cluster(args.cluster)
        gates = gates_from(args, spec.sections)
    except (ClusterFileError, ConfigError) as e:
        raise UsageError(str(e)) from None
    try:
        pod = parse_pod(load_pod(args.pod))
    except InvalidRequest as e:
        raise UsageError(f"{args.pod}: invalid GPU request: {e}") from None
    engine = cluster_engine(spec, settings=EngineSettings(policy=args.policy), gates=gates)
    verdicts = filtered_verdicts(engine, pod)
    scaled = dict(scale_scores([(v.node, v.score) for v in verdicts], engine.policy_of(pod).span))
    policy = pod.policy or args.policy
    if args.json:
        print(json.dumps({"pod": pod.key, "policy": policy, "nodes": [
            {"node": v.node, "fits": v.fits, "score": scaled[v.node] if v.fits else None, "rawScore": v.score,
             "reason": v.reason, "unresolvable": v.unresolvable, "gpus": list(v.gpus)} for v in verdicts]}, indent=2))
        return 0
    table = Table(title=f"{pod.key} with policy {policy}", title_justify="left")
    for column in ("node", "fits", "score", "raw", "GPUs it would get", "why"):
        table.add_column(column)
    best = max((scaled[v.node] for v in verdicts if v.fits), default=None)
    for v in sorted(verdicts, key=lambda v: (not v.fits, -(v.score or 0), v.node)):
        mark = "[green]yes[/]" if v.fits else ("[red]never[/]" if v.unresolvable else "[yellow]not now[/]")
        score = str(scaled[v.node]) + (" (best)" if v.fits and scaled[v.node] == best else "") if v.fits else "-"
        raw = f"{v.score:g}" if v.score is not None else "-"
        table.add_row(v.node, mark, score, raw, ", ".join(v.gpus) or "-", v.reason)
    Console().print(table)
    return 0


def filtered_verdicts(engine: Engine, pod: PodRequest) -> list[NodeVerdict]:
    """Every node's verdict as the extender would give it: the filter verb's reason where it rejects
    (gangs, team limits per node), `Engine.explain`'s score and GPU pick where it passes."""
    names = [n for n in engine.state.names if n]
    answer = engine.filter(pod, names)
    rejected = {**answer.failed, **answer.unresolvable}
    return [NodeVerdict(v.node, False, rejected[v.node], v.node in answer.unresolvable, None, ())
            if v.node in rejected else v for v in engine.explain(pod, names)]
