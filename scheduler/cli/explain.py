"""`gpusched explain --cluster FILE [--config FILE] --pod FILE`: where the file's workloads would go,
and why.

The file holds Pods, Jobs, JobSets, PyTorchJobs (and their PodGroups), one or many documents;
each is expanded to the pods its controller would create (`manifests`). The engine is the one
`serve --cluster` starts with (the file's nodes, running pods, teams and podGroups, `--config` on
top, the PodGroups of the workload file), and the pods go through the extender's own verbs in
order (`what_if`): a gang is planned whole, all or nothing, every other pod is placed after the
ones before it. So every reason reads exactly as the extender would answer. For each pod (for a
gang, one member alone) the best `--top` nodes show their score split into the policy's terms,
the 0..10 the extender would send, and what kube-scheduler makes of it. The engine is thrown
away afterwards: nothing outside this process changes.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from scheduler.cli.errors import UsageError
from scheduler.cli.manifests import ManifestError, Manifests, load_manifests
from scheduler.cli.serve import gates_from
from scheduler.cli.what_if import Candidate, Member, Unit, plan, share_text
from scheduler.clusterfile import ClusterFileError, load_cluster
from scheduler.configfile import ConfigError
from scheduler.core.engine import EngineSettings, NodeVerdict
from scheduler.core.policies import DEFAULT_POLICY, POLICIES
from scheduler.core.request import InvalidRequest, PodRequest, parse_pod
from scheduler.extender.server import cluster_engine
from scheduler.extender.wire import MAX_EXTENDER_PRIORITY, scale_scores

SHIPPED_WEIGHT = 5
"""The extender's `weight` in deploy/base/gpu-scheduler-config.yaml."""
MAX_NODE_SCORE = 100
"""kube-scheduler's framework.MaxNodeScore: an extender's 0..10 is multiplied by 100 / 10."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", metavar="FILE", required=True, help="cluster file (YAML or JSON)")
    parser.add_argument("--pod", "--workload", "-f", dest="pod", metavar="FILE", required=True,
                        help="what to place: Pods, Jobs, JobSets, PyTorchJobs, Deployments, StatefulSets, ReplicaSets and PodGroups, one or many YAML documents")
    parser.add_argument("--config", metavar="FILE", help="teams, quota unit, model weights, gang settings (YAML), "
                                                           "on top of the cluster file's, as for serve")
    parser.add_argument("--policy", default=DEFAULT_POLICY, choices=sorted(POLICIES),
                        help="default scoring policy (a pod's gpusched.io/policy annotation overrides it)")
    parser.add_argument("--top", type=_top, default=5, metavar="N",
                        help="show the score terms of the N best nodes per pod (default 5)")
    parser.add_argument("--extender-weight", type=_top, default=SHIPPED_WEIGHT, metavar="W",
                        help=f"the extender's weight in kube-scheduler's config (default {SHIPPED_WEIGHT}, as shipped "
                             "in deploy/base/gpu-scheduler-config.yaml)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _top(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        spec = load_cluster(args.cluster)
        gates = gates_from(args, spec.sections)
        manifests = load_manifests(args.pod)
    except (ClusterFileError, ConfigError, ManifestError) as e:
        raise UsageError(str(e)) from None
    requests = parsed(args.pod, manifests)
    engine = cluster_engine(spec, settings=EngineSettings(policy=args.policy), gates=gates)
    for group in manifests.groups():
        engine.gates.set_pod_group(group.namespace, group.name, group.min_member)
    for namespace, labels in manifests.namespace_labels.items():
        engine.gates.set_namespace_labels(namespace, labels)
    units = plan(engine, manifests.workloads, requests, top=args.top)
    if args.json:
        print(json.dumps(as_json(units, manifests, args.extender_weight), indent=2))
    else:
        render(units, manifests, args.extender_weight, Console(width=None if sys.stdout.isatty() else 140))
    return 0


def parsed(path: str, manifests: Manifests) -> list[list[PodRequest]]:
    """Every expanded pod's request; an invalid one, or an unknown policy, is the user's mistake."""
    out = []
    for workload in manifests.workloads:
        requests = []
        for pod in workload.pods:
            where = f"{path}: {workload.key}, pod {pod['metadata']['name']}"
            try:
                request = parse_pod(pod)
            except InvalidRequest as e:
                raise UsageError(f"{where}: invalid GPU request: {e}") from None
            if request.policy is not None and request.policy not in POLICIES:
                raise UsageError(f"{where}: gpusched.io/policy: unknown policy {request.policy!r} "
                                 f"(known: {', '.join(sorted(POLICIES))})")
            requests.append(request)
        out.append(requests)
    return out


def composition(weight: int) -> str:
    """How kube-scheduler weighs the extender's 0..10 against its own plugins."""
    factor = MAX_NODE_SCORE // MAX_EXTENDER_PRIORITY
    return (f"kube-scheduler multiplies the extender's 0..{MAX_EXTENDER_PRIORITY} by {factor} (MaxNodeScore "
            f"{MAX_NODE_SCORE} / MaxExtenderPriority {MAX_EXTENDER_PRIORITY}) and by its weight {weight}, so a node "
            f"gains 0..{MAX_EXTENDER_PRIORITY * factor * weight}, added to its own plugins' 0..100 scores times their "
            "weights (defaults: TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2, "
            "NodeResourcesFit 1, NodeResourcesBalancedAllocation 1, ImageLocality 1); the highest total wins.")


# ------------------------------------------------------------------------ JSON
def as_json(units: list[Unit], manifests: Manifests, weight: int) -> dict:
    return {"extenderWeight": weight, "composition": composition(weight), "skipped": manifests.skipped,
            "inferredPodGroups": [{"podGroup": f"{g.namespace}/{g.name}", "minMember": g.min_member} for g in manifests.undeclared()],
            "noPods": [w.key for w in manifests.workloads if not w.pods],
            "units": [{
                "sources": list(u.sources), "gang": u.gang or None, "size": u.size, "policy": u.policy,
                "placed": u.placed, "reason": u.reason, "fitting": u.fitting,
                "pods": [_member_json(m, POLICIES[u.policy].span) for m in u.members],
                "top": [_candidate_json(c, weight) for c in u.candidates],
            } for u in units]}


def _member_json(m: Member, span: float) -> dict:
    scaled = dict(scale_scores([(v.node, v.score if v.fits else None) for v in m.verdicts], span))
    return {"pod": m.pod.key, "node": m.node or None, "gpuIndices": list(m.gpu_indices), "gpus": list(m.gpu_uuids),
            "gpuMilli": m.milli if m.node else None, "reason": m.reason,
            "nodes": [{"node": v.node, "fits": v.fits, "score": scaled[v.node] if v.fits else None,
                       "rawScore": v.score, "reason": v.reason, "unresolvable": v.unresolvable, "gpus": list(v.gpus)}
                      for v in m.verdicts]}


def _candidate_json(c: Candidate, weight: int) -> dict:
    return {"node": c.node, "rawScore": c.raw, "score": c.scaled,
            "kubeSchedulerPoints": c.scaled * weight * (MAX_NODE_SCORE // MAX_EXTENDER_PRIORITY),
            "terms": [{"name": n, "weight": w, "value": v} for n, w, v in c.terms],
            "inputs": [{"name": n, "weight": w, "value": v} for n, w, v in c.inputs]}


# ---------------------------------------------------------------------- tables
def render(units: list[Unit], manifests: Manifests, weight: int, console: Console) -> None:
    if manifests.skipped:
        console.print(f"skipped (they create no pods): {', '.join(manifests.skipped)}")
    for group in manifests.undeclared():
        console.print(f"PodGroup {group.namespace}/{group.name} (minMember {group.min_member}): not in the file, "
                      "inferred from the PyTorchJob's runPolicy.schedulingPolicy as its training operator creates it")
    idle = [w.key for w in manifests.workloads if not w.pods]
    if idle:
        console.print(f"no pods to place (suspended, or parallelism or replicas 0): {', '.join(idle)}")
    for unit in units:
        console.print()
        _render_unit(unit, console)
    console.print()
    console.print(composition(weight))


def _render_unit(unit: Unit, console: Console) -> None:
    source = " + ".join(unit.sources)
    if unit.gang:
        size = f" of {unit.size}" if unit.size else ""
        head = f"[bold]{source}[/]: gang {unit.gang}{size}, {len(unit.members)} pods in the file, planned whole"
    else:
        key = unit.members[0].pod.key
        head = f"[bold]{source}[/]" if source == f"Pod {key}" else f"[bold]{source}[/]: pod {key}"
    console.print(f"{head} (policy {unit.policy})")
    if unit.gang:
        if unit.placed:
            console.print("[green]placed[/]: every member, in one step")
        else:
            console.print(f"[red]cannot be placed[/]: {unit.reason}")
        own_reasons = any(m.reason and m.reason != unit.reason for m in unit.members)  # else said once above
        table = Table("member", "node", "GPU indices", "takes", *(("why not",) if own_reasons else ()), box=None,
                      pad_edge=False)
        for m in unit.members:
            table.add_row(m.pod.name, m.node or "-", _indices(m), share_text(m.milli, len(m.gpu_indices)) if m.node
                          else "-", *((m.reason,) if own_reasons else ()))
        console.print(table)
        if not unit.placed:
            _render_verdicts("each node for one member alone, before the gang", unit.alone, unit.policy, console)
    else:
        m = unit.members[0]
        if m.node:
            console.print(f"[green]placed[/] on {m.node}, GPU indices {_indices(m)}: "
                          f"{share_text(m.milli, len(m.gpu_indices))}")
        else:
            console.print(f"[red]cannot be placed[/]: {m.reason}")
        _render_verdicts("the extender's filter, node by node", m.verdicts, unit.policy, console)
    _render_terms(unit, console)


def _render_verdicts(title: str, verdicts: tuple[NodeVerdict, ...], policy: str, console: Console) -> None:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("node", "fits", "raw", "sent", "GPUs it would get", "why"):
        table.add_column(column)
    scaled = dict(scale_scores([(v.node, v.score if v.fits else None) for v in verdicts], POLICIES[policy].span))
    for v in sorted(verdicts, key=lambda v: (not v.fits, -(v.score or 0), v.node)):
        mark = "[green]yes[/]" if v.fits else ("[red]never[/]" if v.unresolvable else "[yellow]not now[/]")
        sent = f"{scaled[v.node]}/{MAX_EXTENDER_PRIORITY}" if v.score is not None else "-"
        table.add_row(v.node, mark, f"{v.score:g}" if v.score is not None else "-", sent, ", ".join(v.gpus) or "-",
                      v.reason)
    console.print(table)


def _render_terms(unit: Unit, console: Console) -> None:
    if not unit.candidates:
        return
    who = "one member alone, on the books before the gang" if unit.gang else "the nodes that passed the filter"
    title = (f"score terms, {unit.policy}: the best {len(unit.candidates)} of {unit.fitting} nodes ({who}); "
             "raw = Σ weight × value")
    table = Table("node", "raw", "sent", "term", "weight × value", title=title, title_justify="left", box=None,
                  pad_edge=False)
    for c in unit.candidates:
        for i, (name, weight, value) in enumerate(c.terms):
            table.add_row(c.node if i == 0 else "", f"{c.raw:.6g}" if i == 0 else "",
                          f"{c.scaled}/{MAX_EXTENDER_PRIORITY}" if i == 0 else "", name,
                          f"{weight:g} × {value:.6g} = {weight * value:.6g}")
        for i, (name, weight, value) in enumerate(c.inputs):
            if i == 0 or value:  # the parts of x that are 0 here say nothing
                table.add_row("", "", "", f"[dim]{name}[/]", f"[dim]{weight:g} × {value:.6g} = {weight * value:.6g}[/]")
    console.print(table)
    if unit.gang:
        console.print("[dim]a gang's plan takes fewest nodes first, then fewest zones and racks, NVLink, "
                      "and only then these scores[/]")


def _indices(m: Member) -> str:
    return ", ".join(map(str, m.gpu_indices)) or "-"
