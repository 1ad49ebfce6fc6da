"""Workloads planned on a throwaway engine exactly as the extender would place them, for `explain`.

The pods go through the extender's verbs in file order (`Engine.filter`, `scores`, `bind`), so
every answer is the one kube-scheduler would get:
  1. a gang (pods sharing a gang name in one namespace, from any document of the file) has each
     member filtered in turn; once enough members are pending the engine plans and reserves the
     whole gang in one step (all or nothing), and each member is bound to its planned node and
     GPUs. A gang that cannot be planned keeps the reason every member's filter gives.
  2. any other pod is filtered, scored on the nodes that pass, and bound to the best one (equal
     scores: the first node name; kube-scheduler picks at random among its equal totals).
Each pod sees the ones before it placed. Nothing leaves the engine, which the caller throws away.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from scheduler.cli.manifests import Workload
from scheduler.core.engine import BindRejected, Engine, FilterAnswer, NodeVerdict
from scheduler.core.policies.base import Term, weighted_sum
from scheduler.core.request import PodRequest
from scheduler.extender.wire import scale_array


@dataclass(frozen=True)
class Candidate:
    """A node the pod fits on, its policy score, the 0..10 the extender sends, and the score's terms."""

    node: str
    raw: float
    scaled: int
    terms: tuple[tuple[str, float, float], ...]
    """(name, weight, value): Σ weight · value is `raw`."""
    inputs: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Member:
    """Where one pod would go (node, GPU indices and UUIDs, milli per GPU), or why it would not."""

    pod: PodRequest
    node: str = ""
    gpu_indices: tuple[int, ...] = ()
    gpu_uuids: tuple[str, ...] = ()
    milli: int = 0
    reason: str = ""
    verdicts: tuple[NodeVerdict, ...] = ()
    """Every node's answer to this pod's filter, as the extender gave it before the pod was bound."""


@dataclass(frozen=True)
class Unit:
    """A gang, or one pod alone: what the extender plans in one go."""

    sources: tuple[str, ...]
    """The workloads its pods come from ("Job ml/train")."""
    gang: str = ""
    size: int | None = None
    members: list[Member] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    """The best `top` nodes for the (first) pod by the policy, before the unit was placed."""
    fitting: int = 0
    """Nodes with room for the (first) pod, the gates aside."""
    policy: str = ""
    alone: tuple[NodeVerdict, ...] = ()
    """For a gang: every node's verdict for its first member alone, before the gang was planned."""

    @property
    def placed(self) -> bool:
        return all(m.node for m in self.members)

    @property
    def reason(self) -> str:
        return next((m.reason for m in self.members if m.reason), "")


def plan(engine: Engine, workloads: Sequence[Workload], pods: Sequence[Sequence[PodRequest]], *,
         top: int) -> list[Unit]:
    """Place `pods` (parsed, one list per workload) on `engine` in order; one `Unit` per gang or pod."""
    names = [n for n in engine.state.names if n]
    units: dict[object, tuple[list[str], list[PodRequest]]] = {}
    for workload, requests in zip(workloads, pods, strict=True):
        for pod in requests:
            key = ("gang", pod.namespace, pod.gang.name) if pod.gang else ("pod", pod.uid)
            sources, members = units.setdefault(key, ([], []))
            if workload.key not in sources:
                sources.append(workload.key)
            members.append(pod)
    return [_plan_unit(engine, names, tuple(sources), members, top) for sources, members in units.values()]


def _plan_unit(engine: Engine, names: list[str], sources: tuple[str, ...], members: list[PodRequest],
               top: int) -> Unit:
    first = members[0]
    policy = first.policy or engine.settings.policy
    if first.gang is None:
        answer = engine.filter(first, names)
        candidates, fitting = top_candidates(engine, first, answer.passed, top)
        member = _place_alone(engine, first, names, answer)
        return Unit(sources, members=[member], candidates=candidates, fitting=fitting, policy=policy)
    for pod in members:  # counted in the workload mix first, as they are by the time the extender plans them
        engine.observe(pod)
    candidates, fitting = top_candidates(engine, first, names, top)
    alone = tuple(engine.explain(replace(first, gang=None), names))
    for pod in members:  # the last one pending completes the gang: the engine plans and reserves it
        engine.filter(pod, names)
    gang = engine.gates.gangs.gang_of(first.uid)
    size = engine.gates.gangs.size(gang) if gang is not None else first.gang.size
    placed: list[Member] = []
    for pod in members:
        answer = engine.filter(pod, names)  # now every member's answer: its reserved node, or why not
        held = engine.gates.gangs.reserved_for(pod.uid)
        if held is None:
            placed.append(_place_alone(engine, pod, names, answer) if answer.passed else
                          Member(pod, reason=_gang_reason(answer, names), verdicts=_verdicts(engine, pod, names, answer)))
            continue
        verdicts = _verdicts(engine, pod, names, answer)
        alloc = engine.bind(pod.uid, pod.namespace, pod.name, held.node)
        placed.append(Member(pod, alloc.node, alloc.slots, alloc.gpu_uuids, alloc.milli, verdicts=verdicts))
    return Unit(sources, f"{first.namespace}/{first.gang.name}", size, placed, candidates, fitting, policy, alone)


def _place_alone(engine: Engine, pod: PodRequest, names: list[str], answer: FilterAnswer) -> Member:
    verdicts = _verdicts(engine, pod, names, answer)
    if not answer.passed:
        return Member(pod, reason=_why_not(answer, names), verdicts=verdicts)
    scored = {n: s for n, s in engine.scores(pod, answer.passed) if s is not None}
    best = max(sorted(scored), key=scored.__getitem__) if scored else answer.passed[0]
    try:
        alloc = engine.bind(pod.uid, pod.namespace, pod.name, best)
    except BindRejected as e:
        return Member(pod, reason=str(e), verdicts=verdicts)
    return Member(pod, alloc.node, alloc.slots, alloc.gpu_uuids, alloc.milli, verdicts=verdicts)


def top_candidates(engine: Engine, pod: PodRequest, names: Sequence[str], top: int) -> tuple[list[Candidate], int]:
    """The `top` best of the nodes among `names` where `pod` fits, with their terms; and how many fit."""
    fitting, breakdown = engine.score_terms(pod, names)
    if breakdown is None:
        return [], 0
    raw = weighted_sum(breakdown.terms, len(fitting))
    scaled = scale_array(raw, engine.policy_of(pod).span)
    order = sorted(range(len(fitting)), key=lambda i: (-raw[i], fitting[i]))[:top]

    def parts(terms: tuple[Term, ...], i: int) -> tuple[tuple[str, float, float], ...]:
        return tuple((t.name, t.weight, float(t.values[i])) for t in terms)

    return [Candidate(fitting[i], float(raw[i]), int(scaled[i]), parts(breakdown.terms, i),
                      parts(breakdown.inputs, i)) for i in order], len(fitting)


def _verdicts(engine: Engine, pod: PodRequest, names: list[str], answer: FilterAnswer) -> tuple[NodeVerdict, ...]:
    """Every node's verdict as the extender gave it: the filter's reason where it rejected, the
    engine's score and GPU pick where it passed."""
    rejected = {**answer.failed, **answer.unresolvable}
    return tuple(NodeVerdict(v.node, False, rejected[v.node], v.node in answer.unresolvable, None, ())
                 if v.node in rejected else v for v in engine.explain(pod, names))


def _gang_reason(answer: FilterAnswer, names: list[str]) -> str:
    """A gang's reason is the same on every node: said once, as each member's filter says it."""
    reasons = set({**answer.failed, **answer.unresolvable}.values())
    return next(iter(reasons)) if len(reasons) == 1 else _why_not(answer, names)


def _why_not(answer: FilterAnswer, names: list[str]) -> str:
    """One line, as kube-scheduler sums up a pod no node takes: "0/8 nodes are available: ..."."""
    reasons = Counter({**answer.failed, **answer.unresolvable}.values())
    listed = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda rn: (-rn[1], rn[0])))
    return f"0/{len(names)} nodes are available: {listed}"


def share_text(milli: int, gpus: int) -> str:
    """What a placement takes: "2 whole GPUs", "0.5 of a GPU", "no GPU"."""
    if not gpus:
        return "no GPU"
    if milli >= 1000:
        return f"{gpus} whole GPU{'s' if gpus != 1 else ''}"
    return f"{np.round(milli / 1000, 3):g} of a GPU"
