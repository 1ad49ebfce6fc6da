"""The extender's service layer: one engine, one lock, one binder, decoded requests in, wire out.

Concurrency: the engine is synchronous, and every call into it happens on the event loop, so
filter, prioritize and preempt are atomic with respect to each other, and so is a bind's decision
(`Engine.bind`). The allocation is in the books before the binder makes it durable (a journal
write, or Kubernetes API calls), so a filter or another bind arriving meanwhile already counts it,
and it is released again if the binder fails: never a lost or doubled GPU (a gang member's GPUs
go back to its gang's reservation instead). The binder's writes run outside any lock, side by
side: held across them, one slow API call made every bind behind it late for kube-scheduler's
`httpTimeout`. A bind kube-scheduler retries while the first is still being committed shares the
first one's outcome (one commit per pod at a time). A release is recorded by the binder before
the books give the GPUs back, and refused (`ReleaseRefused`) when it cannot be: nothing is
acknowledged that a restart would undo; `bind_lock` keeps releases in order. Gang reservations
past their deadline are released by `expire`, which the app calls every `sweep_interval_s`; gang
and quota changes are handed to `keeper` (the `--state-file` journal, or in a cluster the writer
of reservations onto their pods) after every call that makes them, and the keeper is then told the
books are settled (a moment it may compact the journal in).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Protocol

import numpy as np

from scheduler.core.allocation import Allocation
from scheduler.core.engine import BindRejected, Engine
from scheduler.core.gate_view import gates_view
from scheduler.core.request import InvalidRequest, PodRequest, parse_pod
from scheduler.core.verdict import MESSAGES
from scheduler.core.view import state_view
from scheduler.extender import wire
from scheduler.extender.metrics import ExtenderMetrics
from scheduler.extender.pod_cache import PodCache

log = logging.getLogger(__name__)
_REASON_NAMES = {message: reason.name.lower() for reason, message in MESSAGES.items()}
_GATE_LABELS = {"gang": "gang", "team": "team_quota"}


class BindFailed(Exception):
    """The binder could not make an allocation durable; the message is the reason."""


class ReleaseRefused(Exception):
    """A release the binder could not record: the books keep the allocation; the message is why."""


class RecordKeeper(Protocol):
    """Keeps gang and quota records somewhere durable (the `--state-file` journal)."""

    def note(self, records: list[dict]) -> None:
        """Store records in the order they happened. Must not raise: a failure is the keeper's to repair."""

    def settle(self) -> None:
        """The books are between verbs (every change recorded): a moment to compact."""


class Binder(Protocol):
    """Makes an allocation real outside the engine. `commit` may be retried for the same pod.
    Both raise `BindFailed` when they cannot record the change; the caller then refuses it."""

    async def commit(self, alloc: Allocation, *, waited_s: float = 0.0) -> None:
        """`waited_s`: how long the bind request already waited; it counts against the deadline."""

    async def forget(self, alloc: Allocation) -> None: ...


class MemoryBinder:
    """`--cluster` mode: the books are the record; with a journal they survive restarts."""

    def __init__(self, journal=None) -> None:
        self.journal = journal

    async def commit(self, alloc: Allocation, *, waited_s: float = 0.0) -> None:
        if self.journal is not None:
            try:
                self.journal.bound(alloc)
            except OSError as e:
                raise BindFailed(f"cannot write the state file: {e.strerror}") from None

    async def forget(self, alloc: Allocation) -> None:
        if self.journal is not None:
            try:
                self.journal.released(alloc.uid)
            except OSError as e:
                raise BindFailed(f"cannot write the state file: {e.strerror}") from None


class ExtenderService:
    def __init__(self, engine: Engine, *, binder: Binder | None = None, ready: bool = True,
                 decide_in_filter: bool = False) -> None:
        self.engine = engine
        self.decide_in_filter = decide_in_filter
        """Answer filter with the single best node, so kube-scheduler skips prioritize (the HAMi
        pattern): half the round trips, and our policy decides alone. Fitting nodes not chosen are
        left out of the answer without a reason, as the protocol allows."""
        self.binder = binder or MemoryBinder()
        self.metrics = ExtenderMetrics(lambda: self.engine)
        self.bind_lock = asyncio.Lock()
        self.ready = ready
        self.extra_state: list = []
        """Callables adding sections to /state (gangs, teams, sync status)."""
        self.on_bind_refused: list = []
        """Callables (BindingArgs, reason) told of binds the engine refused (Kubernetes events)."""
        self.extra_state.append(lambda: gates_view(self.engine.gates))
        self.keeper: RecordKeeper | None = None
        """Where gang and quota records go (the state journal); None: nowhere."""
        self.sweep_interval_s = 2.0
        self.caller_timeout_s = 5.0
        """kube-scheduler's `httpTimeout` for the extender (deploy/): a bind answered later was a
        timeout to it, whatever the answer said (`gpusched_bind_late_total`)."""
        self._committing: dict[str, asyncio.Task] = {}
        """Pod UID -> its bind being committed."""
        self.pods = PodCache()
        self.host_pieces = wire.HostPieces()
        """Prioritize answers' host pieces by node row (a row's name is fixed until the node set changes)."""
        """Filter and the prioritize after it parse the same Pod bytes once."""

    # ------------------------------------------------------------------ verbs
    def filter(self, args: wire.ExtenderArgs) -> bytes:
        names = args.names
        try:
            pod = self.pods.parse(args.pod, args.pod_json)
        except InvalidRequest as e:
            self.metrics.rejections.labels("invalid_request").inc(len(names))
            return wire.encode_filter_result(passed=[], failed={}, unresolvable=dict.fromkeys(names, f"invalid GPU request: {e}"),
                                             nodes=args.nodes)
        answer = self.engine.filter(pod, names)
        self._flush_records()
        if answer.tally is not None:
            self._count_groups(answer.tally)
        else:
            self._count_groups(Counter(answer.failed.values()))
            self._count_groups(Counter(answer.unresolvable.values()))
        passed = answer.passed
        if self.decide_in_filter and len(passed) > 1:
            scores = self.engine.score_array(pod, passed)
            best = np.flatnonzero(scores == np.nanmax(scores))
            passed = [min(passed[i] for i in best.tolist())]  # ties: the first name, deterministically
        return wire.encode_filter_result(passed=passed, failed=answer.failed, unresolvable=answer.unresolvable,
                                         nodes=args.nodes)

    def prioritize(self, args: wire.ExtenderArgs) -> bytes:
        names = args.names
        try:
            pod = self.pods.parse(args.pod, args.pod_json)
        except InvalidRequest:
            return wire.encode_host_priorities([(n, 0) for n in names])
        scores, rows = self.engine.scored(pod, names)
        span = self.engine.policy_of(pod).span
        if rows is None:
            return wire.encode_scaled(names, wire.scale_array(scores, span))
        state = self.engine.state
        self.host_pieces.reset(state.structure_version, state.rows)
        return wire.encode_scaled_rows(self.host_pieces, rows, names, wire.scale_array(scores, span))

    async def bind(self, args: wire.BindingArgs) -> bytes:
        arrived = time.monotonic()
        try:
            committing = self._committing.get(args.pod_uid)
            if committing is None:
                committing = asyncio.get_running_loop().create_task(self._bind(args, arrived))
                self._committing[args.pod_uid] = committing
                committing.add_done_callback(lambda t, uid=args.pod_uid: self._committed(uid, t))
            return await asyncio.shield(committing)
        finally:
            self._flush_records()
            if time.monotonic() - arrived > self.caller_timeout_s:
                self.metrics.bind_late.inc()

    def _committed(self, uid: str, task: asyncio.Task) -> None:
        if self._committing.get(uid) is task:
            del self._committing[uid]

    async def _bind(self, args: wire.BindingArgs, arrived: float) -> bytes:
        existing = self.engine.allocations.get(args.pod_uid)
        try:
            alloc = self.engine.bind(args.pod_uid, args.pod_namespace, args.pod_name, args.node)
        except BindRejected as e:
            self.metrics.bind_failures.labels("rejected").inc()
            for hook in self.on_bind_refused:
                hook(args, str(e))
            return wire.encode_binding_result(str(e))
        try:
            await self.binder.commit(alloc, waited_s=time.monotonic() - arrived)
        except Exception as e:  # whatever broke, the GPUs go back and the answer is an Error
            if existing is None and self.engine.allocations.get(alloc.uid) is alloc:
                self.engine.unbind(alloc.uid)
            self.metrics.bind_failures.labels("binder").inc()
            if not isinstance(e, BindFailed):
                log.exception("binder failed unexpectedly for %s", alloc.key)
                return wire.encode_binding_result(f"gpusched could not bind {alloc.key}: internal error ({e})")
            return wire.encode_binding_result(str(e))
        if existing is None:
            self.metrics.pods_bound.inc()
        return wire.encode_binding_result("")

    def preempt(self, args: wire.PreemptionArgs) -> bytes:
        try:
            pod = parse_pod(args.pod)
        except InvalidRequest:
            return wire.encode_preemption_result({}, {})
        kept = self.engine.preempt(pod, args.victims)
        dropped = sum(len(v) for v in args.victims.values()) - sum(len(v) for v in kept.values())
        self.metrics.preempt_victims_dropped.inc(max(0, dropped))
        return wire.encode_preemption_result(kept, args.num_pdb_violations)

    async def release(self, uid: str) -> Allocation | None:
        """A pod ended: record that, then give its GPUs back. Raises ReleaseRefused, changing
        nothing, when the binder cannot record it (a restart would otherwise bring the pod back)."""
        async with self.bind_lock:
            held = self.engine.allocations.get(uid)
            if held is not None:
                try:
                    await self.binder.forget(held)
                except BindFailed as e:
                    log.error("refused to release %s: %s", held.key, e)
                    raise ReleaseRefused(f"gpusched cannot release {held.key}: {e}") from None
            alloc = self.engine.release(uid)
            self._flush_records()
            return alloc

    def expire(self, now: float | None = None) -> list:
        """Release gang reservations past their deadline, by `now` or the engine's clock (the app's
        sweeper calls this; `simulated_time` hands it the simulation's time)."""
        ended = self.engine.expire(now)
        self._flush_records()
        for e in ended:
            log.info("gang %s: reservation %d released: %s", e.gang, e.id, e.reason)
        return ended

    def observe_pending(self, pod: PodRequest) -> None:
        """A pending pod seen outside a filter call (`Engine.observe_pending`)."""
        self.engine.observe_pending(pod)
        self._flush_records()

    def _flush_records(self) -> None:
        """Hand the gatekeeper's new records to the keeper; the books are settled after this."""
        records = self.engine.gates.journal.drain()
        if self.keeper is not None:
            if records:
                self.keeper.note(records)
            self.keeper.settle()

    # ------------------------------------------------------------------ views
    def state(self) -> dict[str, Any]:
        view = state_view(self.engine)
        for section in self.extra_state:
            view.update(section())
        return view

    def explain_pod(self, pod: PodRequest):
        return self.engine.explain(pod)

    def _count_groups(self, tally: dict[str, int]) -> None:
        """Rejections by reason label, from how many nodes got each message."""
        for message, n in tally.items():
            label = _REASON_NAMES.get(message) or _GATE_LABELS.get(message.split(" ", 1)[0], "other")
            self.metrics.rejections.labels(label).inc(n)
