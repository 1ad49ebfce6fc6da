"""The scheduling engine: the books, and the verbs kube-scheduler drives them with.

One `Engine` holds the cluster state, every allocation (bound pod -> GPUs) and the pods it has
been asked about but not yet bound. It is synchronous and single-threaded by contract: the
adapter that owns it serialises calls (the aiohttp server runs them on its event loop; the
simulator calls it directly). It does no I/O and reads no clock.

A scheduling cycle, as kube-scheduler runs it against the extender:
  1. filter(pod, nodes)     remember the pod; pod-level gates; then every node, vectorised
  2. scores(pod, nodes)     the pod's policy scores the nodes that fit
  3. bind(pod, node)        re-check, pick GPUs, record the allocation (idempotent per UID)
  preempt(pod, victims)     keep only victims whose removal makes the pod fit
  release(uid)              a pod ended or was deleted
  observe_pending(pod)      a pending pod an adapter's watch saw, never filtered (it may wait for reclaim)
  expire(now)               release gang reservations past their deadline (adapters call it periodically)
Gangs and team quotas live in `self.gates` (gatekeeper.py), called at fixed points of these verbs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from scheduler.core import filters
from scheduler.core.allocation import Allocation
from scheduler.core.candidates import Candidates, resolve
from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.fit_memo import FitMemo
from scheduler.core.fit_one import fit_one
from scheduler.core.gangs import GangSettings
from scheduler.core.gatekeeper import Gatekeeper, PlanTools
from scheduler.core.model import Node, Sharing
from scheduler.core.policies import DEFAULT_POLICY, POLICIES, Policy, PolicyContext
from scheduler.core.policies.base import Breakdown
from scheduler.core.quotas import QuotaConfig
from scheduler.core.rehearsal_board import Rehearsals
from scheduler.core.request import PodRequest
from scheduler.core.selector import ModelSelector
from scheduler.core.state import ClusterState
from scheduler.core.verdict import Reason
from scheduler.core.workload import TaskType, Workload, WorkloadMix

_MODEL_MASK_CACHE = 256
_FITS_ANYWHERE_LIMIT = 4096
"""Pod shapes judged per books generation; a quiet cluster watching many shapes starts afresh."""


class BindRejected(Exception):
    """A bind the engine refuses; the message is the one-line reason the scheduler sees."""


@dataclass(frozen=True)
class EngineSettings:
    policy: str = DEFAULT_POLICY
    mix_coverage: float = 0.95
    """FGD's typical workload: the most popular shapes covering this share of pods."""
    mix_refresh_every: int = 64
    """Publish a new workload mix after this many newly seen pods (score caches live in between)."""
    pending_limit: int = 100_000
    """Pods filtered but never bound are forgotten oldest-first beyond this many; so are the UIDs
    remembered as counted in the workload mix (a pod forgotten and filtered again counts twice,
    which only nudges the mix)."""
    seed: int = 0
    rehearse_off_path: bool = False
    """Policies that rehearse (fgd-plus) ask `Engine.rehearsals` instead of playing where they
    score, and the server plays the rehearsals in the background (`gpusched serve`); False: played
    in place, so placements are a pure function of the inputs (simulator, tests, explain)."""
    gangs: GangSettings = field(default_factory=GangSettings)
    """Gang topology (zone and rack labels) and the default reservation timeout."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r} (known: {', '.join(sorted(POLICIES))})")


@dataclass(frozen=True)
class FilterAnswer:
    """Names that passed, and a reason for every one that did not."""

    passed: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    tally: dict[str, int] | None = None
    """How many nodes each reason was given to, where counted while grouping (else None: count
    the maps). Metrics read this: counting 5,000 reasons one by one cost more than grouping them."""


@dataclass(frozen=True)
class NodeVerdict:
    """One node's answer for one pod, for `explain`."""

    node: str
    fits: bool
    reason: str
    unresolvable: bool
    score: float | None
    gpus: tuple[str, ...]


def _groups(codes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(code, positions in ascending order) for each non-zero code, codes ascending."""
    rejected = np.flatnonzero(codes)
    if not len(rejected):
        return []
    found = codes[rejected]
    present = np.flatnonzero(np.bincount(found)).tolist()  # codes are small integers (`Reason`)
    if len(present) == 1:  # the usual case: one reason for every rejected node
        return [(present[0], rejected)]
    return [(code, rejected[found == code]) for code in present]


class Engine:
    def __init__(self, nodes: Iterable[Node] = (), *, settings: EngineSettings | None = None,
                 workload: Workload | None = None, clock: Callable[[], float] | None = None,
                 quotas: QuotaConfig | None = None) -> None:
        """`clock` (seconds) times gang reservations; without one, time is what `expire(now)` last said."""
        self.settings = settings or EngineSettings()
        self.state = ClusterState(nodes)
        self.allocations: dict[str, Allocation] = {}
        self._by_node: dict[str, dict[str, None]] = {}
        self._pending: OrderedDict[str, PodRequest] = OrderedDict()
        self._fixed_workload = workload
        self._mix = WorkloadMix(coverage=self.settings.mix_coverage, refresh_every=self.settings.mix_refresh_every)
        self._seen: OrderedDict[str, None] = OrderedDict()
        """UIDs whose shape the mix has counted, least recently seen first (at most `pending_limit`)."""
        self.rehearsals = Rehearsals() if self.settings.rehearse_off_path else None
        self._context = PolicyContext(rng=np.random.default_rng(self.settings.seed), seed=self.settings.seed,
                                      rehearsals=self.rehearsals)
        self._model_masks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._sequence = 0
        self._last_candidates: tuple[int, Candidates] | None = None
        self._last_fit: tuple | None = None
        self._fit_memo = FitMemo()
        self._fits_anywhere: tuple[int, dict[tuple, bool]] = (-1, {})
        """(books generation, pod shape -> fits on some node): `observe_pending`'s judgements."""
        self.gates = Gatekeeper(self, PlanTools(self._models, self.policy_of, self._ctx, self._allocation),
                                clock=clock, quotas=quotas, gangs=self.settings.gangs)

    # ------------------------------------------------------------------ cluster
    def upsert_node(self, node: Node) -> None:
        """Add a node or replace its description; allocations on it are re-applied (by GPU UUID)."""
        row = self.state.index.get(node.name)
        if row is None:
            self.state.add_node(node)
        else:
            self.state.replace_node(row, node)
        self._reapply(node)
        self.gates.on_node_changed(node.name, rewritten=True)

    def remove_node(self, name: str) -> None:
        """Forget a node's capacity. Pods recorded on it stay in the books until released."""
        row = self.state.index.get(name)
        if row is not None:
            self.state.remove_node(row)
            self.gates.on_node_changed(name, rewritten=False)

    def set_node_unavailable(self, name: str, reason: str) -> None:
        """Take a node out of (reason non-empty) or back into service without touching its GPUs."""
        row = self.state.index.get(name)
        if row is None:
            return
        node = self.state.specs[row]
        if node is not None and node.unavailable_reason != reason:
            self.state.specs[row] = replace(node, unavailable_reason=reason)
            self.state.set_unavailable(row, bool(reason))
            self.gates.on_node_changed(name, rewritten=False)

    def _reapply(self, node: Node) -> None:
        row = self.state.index[node.name]
        slot_of = {g.uuid: g.index for g in node.gpus}
        for uid in self._by_node.get(node.name, {}):
            alloc = self.allocations[uid]
            slots = tuple(slot_of[u] for u in alloc.gpu_uuids if u in slot_of)
            if slots != alloc.slots:
                memory = alloc.gpu_memory_mib[:len(slots)] if alloc.share else tuple(
                    node.gpus[s].memory_mib for s in slots)
                alloc = replace(alloc, slots=slots, gpu_memory_mib=memory)
                self.allocations[uid] = alloc
            self.state.restore(row, alloc.grant)

    # -------------------------------------------------------------------- verbs
    def observe(self, pod: PodRequest) -> None:
        """Remember a pod being scheduled, so bind can find it, and count its shape once."""
        if pod.uid in self.allocations:
            return
        self._pending[pod.uid] = pod
        self._pending.move_to_end(pod.uid)
        while len(self._pending) > self.settings.pending_limit:
            self._pending.popitem(last=False)
        if self._first_sight(pod.uid):
            self._mix.observe(pod)

    def observe_pending(self, pod: PodRequest) -> bool:
        """A pending pod an adapter saw outside a filter call (the pod watch): `observe` it, and if
        it fits on no node while its team stays within its guarantee, note it as waiting for reclaim.

        kube-scheduler counts `nvidia.com/gpu` itself: with every GPU requested it rejects a whole-GPU
        pod in its own filters and never asks the extender, so only this call tells the gatekeeper.
        It only ever adds a waiting pod (over all nodes, not the ones kube-scheduler would pass);
        filter, bind and release take it off again. Returns whether the pod waits for reclaim.
        """
        if pod.uid in self.allocations:
            return False
        self.observe(pod)
        if pod.uid in self.gates.waiting_for_reclaim:
            return True
        if self.pod_gate(pod) or not self.gates.may_reclaim(pod):
            return False
        generation, anywhere = self._fits_anywhere
        if generation != self.state.generation or len(anywhere) >= _FITS_ANYWHERE_LIMIT:  # judge afresh
            generation, anywhere = self._fits_anywhere = (self.state.generation, {})
        fits = anywhere.get(pod.shape)
        if fits is None:  # every row through one slice; removed rows are empty and fit no GPU pod
            rows = slice(0, len(self.state.specs))
            fits = anywhere[pod.shape] = bool(filters.fit(self.state, pod, rows, self._models(pod)).fits.any())
        if not fits:
            self.gates.wait_for_reclaim(pod)
        return not fits

    def filter(self, pod: PodRequest, names: Sequence[str]) -> FilterAnswer:
        """Which of `names` can take `pod` now; a reason for each that cannot."""
        self.observe(pod)
        decided = self.gates.filter(pod, names)
        if decided is not None:
            return FilterAnswer(passed=decided[0], unresolvable=decided[1])
        gate = self.pod_gate(pod)
        if gate:
            self.gates.after_filter(pod, False)
            return FilterAnswer(passed=[], unresolvable=dict.fromkeys(names, gate))
        cands = self._candidates(names)
        fit = filters.fit(self.state, pod, cands.index, self._models(pod))
        codes = fit.codes
        failed: dict[str, str] = {}
        unresolvable = dict.fromkeys((names[i] for i in cands.unknown), Reason.UNKNOWN_NODE.message)
        tally: dict[str, int] = {Reason.UNKNOWN_NODE.message: len(unresolvable)} if unresolvable else {}
        for code, where in _groups(codes):
            reason = Reason(code)
            target = unresolvable if reason.unresolvable else failed
            if reason is Reason.NODE_UNAVAILABLE:  # each node has its own reason
                for i in where.tolist():
                    message = target[cands.labels[i]] = self._message(reason, int(fit.rows[i]))
                    tally[message] = tally.get(message, 0) + 1
            else:
                labels = cands.labels[where].tolist()
                if target:
                    target.update(dict.fromkeys(labels, reason.message))
                elif reason.unresolvable:
                    unresolvable = dict.fromkeys(labels, reason.message)
                else:
                    failed = dict.fromkeys(labels, reason.message)
                tally[reason.message] = tally.get(reason.message, 0) + len(labels)
        ok = np.flatnonzero(codes == 0)
        ok = ok[np.argsort(cands.position[ok], kind="stable")]  # back to the caller's order
        passed = cands.labels[ok].tolist()
        kept = self.gates.refine(pod, passed, unresolvable)  # quotas in A100-equivalents: per node
        if len(kept) < len(passed):
            passed, ok = kept, ok[np.isin(cands.labels[ok], kept)]
            tally = None  # refine added reasons of its own
        self.gates.after_filter(pod, bool(passed))
        self._last_fit = (pod.uid, self.state.generation, passed, fit.rows[ok], fit.slot_fit[ok])
        return FilterAnswer(passed, failed, unresolvable, tally)

    def scores(self, pod: PodRequest, names: Sequence[str]) -> list[tuple[str, float | None]]:
        """The pod's policy score for each name, None where the pod does not fit (now)."""
        values = self.score_array(pod, names)
        return [(n, None if v != v else v) for n, v in zip(names, values.tolist(), strict=True)]

    def score_array(self, pod: PodRequest, names: Sequence[str]) -> np.ndarray:
        """float64 [len(names)]: the pod's policy score per name, NaN where it does not fit now."""
        return self.scored(pod, names)[0]

    def scored(self, pod: PodRequest, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """`score_array`, and each name's state row where the engine knows them without a lookup
        (the prioritize right after its filter, every name fitting), else None."""
        self.observe(pod)
        out = np.full(len(names), np.nan)
        planned = self.gates.planned_node(pod)
        if planned is not None:  # a reserved gang member fits its planned node only
            out[[i for i, n in enumerate(names) if n == planned]] = 1.0
            return out, None
        if self.pod_gate(pod):
            return out, None
        last = self._last_fit
        known = None
        if (last is not None and last[0] == pod.uid and last[1] == self.state.generation
                and last[2] == names):  # prioritize right after filter: the same fitting nodes
            position, rows, slot_fit = np.arange(len(names)), last[3], last[4]
            known = rows
        else:
            cands = self._candidates(names)
            fit = filters.fit(self.state, pod, cands.index, self._models(pod))
            ok = fit.fits
            position, rows, slot_fit = cands.position[ok], fit.rows[ok], fit.slot_fit[ok]
        if len(rows):
            out[position] = self.policy_of(pod).node_scores(self.state, pod, rows, slot_fit, self._ctx())
        return out, known

    def fit_rows(self, pod: PodRequest, rows: np.ndarray | slice) -> tuple[str, filters.Fit | None]:
        """`filter` over state rows instead of names, for in-process callers (the simulator): the
        same observe, gate and vectorised fit, without name lookups or reason strings.
        Returns (gate reason, None) when a pod-level gate rejects the pod, else ("", fit).
        Only for pods the gatekeeper does not decide by name: a gang member, or any pod while team
        quotas are on, must go through `filter` (its hooks take node names).
        `rows` as `slice(0, n)` answers from the per-shape memo (`fit_memo`): the fit's arrays are
        then the memo's, to be read before the next call or change to the books."""
        self.observe(pod)
        gate = self.pod_gate(pod)
        if gate:
            return gate, None
        if isinstance(rows, slice) and not rows.start and rows.step is None and rows.stop <= self.state.rows:
            return "", self._fit_memo.fit(self.state, pod, rows.stop, self._models(pod))
        return "", filters.fit(self.state, pod, rows, self._models(pod))

    def score_rows(self, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray) -> np.ndarray:
        """`scores` for rows that fit (from `fit_rows`): the policy's float64 scores, in order."""
        return self.policy_of(pod).node_scores(self.state, pod, rows, slot_fit, self._ctx())

    def bind(self, uid: str, namespace: str, name: str, node: str) -> Allocation:
        """Re-check the pod on `node`, pick its GPUs and record them. Idempotent per UID.

        Raises BindRejected for a pod never seen, a UID that does not match, a pod already bound
        elsewhere, or a node that no longer fits.
        """
        existing = self.allocations.get(uid)
        if existing is not None:
            if (existing.namespace, existing.name) != (namespace, name):
                raise BindRejected(f"UID {uid} belongs to {existing.key}, not {namespace}/{name}")
            if existing.node != node:
                raise BindRejected(f"pod {namespace}/{name} is already bound to {existing.node}")
            return existing
        held, refused = self.gates.take_reserved(uid, namespace, name, node)
        if refused:
            raise BindRejected(refused)
        if held is not None:  # a gang member: its GPUs are already held in the books
            self._sequence += 1
            alloc = replace(held, sequence=self._sequence)
            self._record(alloc)
            return alloc
        pod = self._pending.get(uid)
        if pod is None:
            other = next((p for p in self._pending.values() if (p.namespace, p.name) == (namespace, name)), None)
            if other is not None:
                raise BindRejected(f"UID mismatch for {namespace}/{name}: asked to bind {uid}, "
                                   f"filtered {other.uid} (the pod was re-created)")
            raise BindRejected(f"pod {namespace}/{name} (UID {uid}) was never filtered by gpusched")
        if (pod.namespace, pod.name) != (namespace, name):
            raise BindRejected(f"UID {uid} belongs to {pod.key}, not {namespace}/{name}")
        gate = self.pod_gate(pod)
        if gate:
            raise BindRejected(gate)
        return self.place(pod, node)

    def place(self, pod: PodRequest, node: str, *, slots: tuple[int, ...] | None = None,
              **record: object) -> Allocation:
        """Check `pod` on `node`, pick its GPUs (or take `slots`), and record the allocation."""
        row = self.state.index.get(node)
        if row is None:
            raise BindRejected(f"node {node} is unknown to gpusched")
        code, slot_fit = self._fit_memo.fit_row(self.state, pod, row, self._models(pod))
        if code is not Reason.FITS:
            raise BindRejected(f"node {node} no longer fits {pod.key}: {self._message(code, row)}")
        if slots is None:
            slots = self.policy_of(pod).pick(self.state, pod, row, slot_fit, self._ctx())
        slots = tuple(int(s) for s in slots)
        fields, refused = self.gates.record_fields(pod, row, slots)
        if refused:
            raise BindRejected(refused)
        self._sequence += 1
        alloc = self._allocation(pod, row, slots, **{**fields, "sequence": self._sequence, **record})
        self.state.apply(row, alloc.grant)
        self._record(alloc)
        return alloc

    def release(self, uid: str, *, leaving: bool = True) -> Allocation | None:
        """A pod left (finished, deleted, evicted): give its capacity back.

        `leaving=False`: the record is about to be replaced (restore), so gangs do not count it gone.
        """
        self._pending.pop(uid, None)
        alloc = self.allocations.pop(uid, None)
        if alloc is None:
            self.gates.on_forgotten(uid)
            return None
        self._by_node.get(alloc.node, {}).pop(uid, None)
        row = self.state.index.get(alloc.node)
        if row is not None:
            self.state.release(row, alloc.grant)
        if leaving:
            self.gates.on_released(alloc)
        else:
            self.gates.on_replaced(alloc)
        return alloc

    def unbind(self, uid: str) -> None:
        """Undo a bind whose commit failed: the pod is pending again (a gang member keeps its reservation)."""
        alloc = self.allocations.get(uid)
        if alloc is not None and self.gates.give_back(alloc):
            del self.allocations[uid]
            self._by_node.get(alloc.node, {}).pop(uid, None)
        else:
            self.release(uid)

    def expire(self, now: float | None = None) -> list:
        """Release gang reservations whose deadline passed (by `now`, else the clock). Returns what ended."""
        return self.gates.expire(now)

    def restore(self, alloc: Allocation) -> str:
        """Put a recorded allocation back in the books (state file, pod annotations).

        The record wins over the books: a pod that runs holds its GPUs even if the books
        disagree. Returns "" or what did not fit, for the caller to report.
        """
        if alloc.uid in self.allocations:
            self.release(alloc.uid, leaving=False)
        else:
            # A replica that learns of a reserved member's bind from its record (a standby, a
            # restarted one) still holds the member's grant in the reservation: the record replaces it.
            self.gates.drop_held(alloc.uid)
        row = self.state.index.get(alloc.node)
        problem = "node unknown" if row is None else ""
        if row is not None:
            node = self.state.specs[row]
            slot_of = {g.uuid: g.index for g in node.gpus}
            missing = [u for u in alloc.gpu_uuids if u not in slot_of]
            slots = tuple(slot_of[u] for u in alloc.gpu_uuids if u in slot_of)
            memory = alloc.gpu_memory_mib[:len(slots)] if alloc.share else tuple(node.gpus[s].memory_mib for s in slots)
            alloc = replace(alloc, slots=slots, gpu_memory_mib=memory)
            problem = self.state.restore(row, alloc.grant)
            if missing:
                problem = f"GPUs {', '.join(missing)} not on node {alloc.node}"
        self._sequence = max(self._sequence, alloc.sequence)
        self._record(alloc)
        return problem

    def preempt(self, pod: PodRequest, victims: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """For each candidate node, the victims whose eviction the pod actually needs.

        A node where the pod fits already (by gpusched's books) keeps kube-scheduler's list
        unchanged: its victims are needed for something kube-scheduler counts. A node where even
        evicting all victims leaves no room is dropped. Otherwise victims are reprieved, highest
        priority first, while the pod still fits, as kube-scheduler's own dry run does.
        """
        self.observe(pod)
        if self.pod_gate(pod):
            return {}
        out: dict[str, list[str]] = {}
        allowed = self.gates.victim_rule(pod)  # team guarantees and whole gangs
        for node, proposed in victims.items():
            row = self.state.index.get(node)
            uids = allowed(proposed)
            if row is None or not uids:
                continue
            if self._fits_after(pod, row, ()):
                out[node] = list(uids)
                continue
            ours = [u for u in uids if self.allocations.get(u) is not None and self.allocations[u].node == node]
            if not self._fits_after(pod, row, ours):
                continue
            needed = list(ours)
            for uid in sorted(ours, key=lambda u: (-self.allocations[u].priority, u)):
                trial = [u for u in needed if u != uid]
                if self._fits_after(pod, row, trial):
                    needed = trial
            keep = set(self.gates.whole_gangs(needed, uids)) | {u for u in uids if u not in self.allocations}
            if needed:
                out[node] = [u for u in uids if u in keep]
        return out

    def explain(self, pod: PodRequest, names: Sequence[str] | None = None) -> list[NodeVerdict]:
        """Every node's verdict, score and GPU pick for `pod`, without changing anything."""
        names = list(names) if names is not None else [n for n in self.state.names if n]
        held = self.gates.gangs.reserved_for(pod.uid)
        if held is not None:
            elsewhere = f"gang {pod.namespace}/{held.gang}: reserved on {held.node}"
            return [NodeVerdict(n, n == held.node, "fits" if n == held.node else elsewhere, n != held.node, None,
                                held.gpu_uuids if n == held.node else ()) for n in names]
        gate = self.pod_gate(pod)
        if gate:
            return [NodeVerdict(n, False, gate, True, None, ()) for n in names]
        rows, _ = self.state.rows_of(names)
        out: list[NodeVerdict] = []
        known = np.flatnonzero(rows >= 0)
        fit = filters.fit(self.state, pod, rows[known], self._models(pod))
        policy = self.policy_of(pod)
        ok = fit.fits
        values = policy.node_scores(self.state, pod, fit.rows[ok], fit.slot_fit[ok], self._ctx()) if ok.any() else []
        score_of = dict(zip(fit.rows[ok].tolist(), np.asarray(values).tolist(), strict=True))
        by_row = {int(r): i for i, r in enumerate(fit.rows)}
        for name, row in zip(names, rows.tolist(), strict=True):
            if row < 0:
                out.append(NodeVerdict(name, False, Reason.UNKNOWN_NODE.message, True, None, ()))
                continue
            i = by_row[row]
            reason = Reason(int(fit.codes[i]))
            if reason is Reason.FITS:
                slots = policy.pick(self.state, pod, row, fit.slot_fit[i], self._ctx())
                uuids = self.state.uuids(row)
                out.append(NodeVerdict(name, True, "fits", False, score_of[row], tuple(uuids[s] for s in slots)))
            else:
                out.append(NodeVerdict(name, False, self._message(reason, row), reason.unresolvable, None, ()))
        return out

    def score_terms(self, pod: PodRequest, names: Sequence[str]) -> tuple[list[str], Breakdown | None]:
        """The nodes of `names` where `pod` fits now (by the books, gates aside), and their scores
        split into the policy's named terms (`Policy.explain`), without changing anything."""
        rows, _ = self.state.rows_of(names)
        fit = filters.fit(self.state, pod, rows[rows >= 0], self._models(pod))
        ok = fit.fits
        if not ok.any():
            return [], None
        nodes = [self.state.names[r] for r in fit.rows[ok].tolist()]
        return nodes, self.policy_of(pod).node_terms(self.state, pod, fit.rows[ok], fit.slot_fit[ok], self._ctx())

    # ---------------------------------------------------------------- policies
    def pod_gate(self, pod: PodRequest) -> str:
        """A reason that rejects the pod on every node before any node is looked at, or ""."""
        if pod.policy is not None and pod.policy not in POLICIES:
            return f"gpusched.io/policy: unknown policy {pod.policy!r} (known: {', '.join(sorted(POLICIES))})"
        return self.gates.pod_gate(pod)

    def policy_of(self, pod: PodRequest) -> Policy:
        return POLICIES[pod.policy or self.settings.policy]

    def workload(self) -> Workload | None:
        return self._fixed_workload or self._mix.snapshot()

    @property
    def policy_context(self) -> PolicyContext:
        """The context the policies score in (read it, for reports; never change it)."""
        return self._ctx()

    def _ctx(self) -> PolicyContext:
        self._context.workload = self.workload()
        return self._context

    # ----------------------------------------------------------------- helpers
    def _candidates(self, names: Sequence[str]) -> Candidates:
        """`names` resolved to rows; the last resolution is kept while the node set is unchanged."""
        last = self._last_candidates
        if last is not None and last[0] == self.state.structure_version and last[1].names == names:
            return last[1]
        cands = resolve(self.state, names)
        self._last_candidates = (self.state.structure_version, cands)
        return cands

    def _models(self, pod: PodRequest) -> np.ndarray:
        key = (pod.models, self.state.structure_version)
        mask = self._model_masks.get(key)
        if mask is None:
            mask = filters.model_mask(self.state, pod)
            self._model_masks[key] = mask
            while len(self._model_masks) > _MODEL_MASK_CACHE:
                self._model_masks.popitem(last=False)
        return mask

    def _message(self, reason: Reason, row: int) -> str:
        if reason is Reason.NODE_UNAVAILABLE:
            spec = self.state.specs[row]
            return (spec.unavailable_reason if spec else "") or reason.message
        return reason.message

    def _fits_after(self, pod: PodRequest, row: int, evicted: Sequence[str]) -> bool:
        grants = [self.allocations[u].grant for u in evicted]
        for grant in grants:
            self.state.release(row, grant)
        try:
            return fit_one(self.state, pod, row, self._models(pod))[0] is Reason.FITS
        finally:
            for grant in grants:
                self.state.restore(row, grant)

    def _allocation(self, pod: PodRequest, row: int, slots: tuple[int, ...], **record: object) -> Allocation:
        node = self.state.specs[row]
        assert node is not None
        if pod.is_share:
            memory = (pod.gpu_memory_mib,)
            milli = pod.gpu_milli
        else:
            memory = tuple(node.gpus[s].memory_mib for s in slots)
            milli = MILLI_PER_GPU if slots else 0
        fields = dict(
            uid=pod.uid, namespace=pod.namespace, name=pod.name, node=node.name,
            gpu_uuids=tuple(node.gpus[s].uuid for s in slots), slots=slots, milli=milli,
            gpu_memory_mib=memory, cpu_milli=pod.cpu_milli, memory_mib=pod.memory_mib,
            mps=pod.is_share and bool(slots) and node.gpus[slots[0]].sharing is Sharing.MPS,
            share=pod.is_share, priority=pod.priority, created=pod.created,
            gang=pod.gang.name if pod.gang else "", team=pod.team_label or "",
        )
        fields.update(record)
        return Allocation(**fields)

    def _record(self, alloc: Allocation) -> None:
        self.allocations[alloc.uid] = alloc
        self._by_node.setdefault(alloc.node, {})[alloc.uid] = None
        self._pending.pop(alloc.uid, None)
        self.gates.on_recorded(alloc)
        if self._first_sight(alloc.uid):  # restored from a record: its shape counts in the mix too
            self._mix.observe_type(TaskType(alloc.cpu_milli, alloc.milli, len(alloc.slots) if alloc.slots else 0,
                                            ModelSelector()), memory_mib=alloc.memory_mib)

    def _first_sight(self, uid: str) -> bool:
        """Remember `uid` as seen (most recently); True the first time (within the last `pending_limit`)."""
        if uid in self._seen:
            self._seen.move_to_end(uid)
            return False
        self._seen[uid] = None
        if len(self._seen) > self.settings.pending_limit:
            self._seen.popitem(last=False)
        return True

    def pending(self, uid: str) -> PodRequest | None:
        return self._pending.get(uid)

    def allocations_on(self, node: str) -> list[Allocation]:
        return [self.allocations[u] for u in self._by_node.get(node, {})]
