"""The extender's verbs as they were before the fast paths, kept as the reference they must equal.

Today's answers are these answers, byte for byte: `test_fast_paths` replays random scripts
through the real app and through this, and compares every body and the rejection counters.
What the fast paths replaced, and what stands here instead:
- the typed decoder and the parsed-pod cache: the lenient decoder and `parse_pod` every call;
- reasons grouped and counted by group: one map update per reason code, counted per name;
- `fit_one` in bind: the vectorised `filters.fit` over a one-row array;
- host pieces looked up in one C loop: the HostPriorityList built as dicts and serialised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from scheduler.core import filters
from scheduler.core.allocation import Allocation
from scheduler.core.engine import BindRejected, Engine, FilterAnswer
from scheduler.core.request import InvalidRequest, PodRequest, parse_pod
from scheduler.core.verdict import Reason
from scheduler.extender import wire
from scheduler.extender.service import _GATE_LABELS, _REASON_NAMES, ExtenderService


class ReferenceEngine(Engine):
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
        for code in np.unique(codes[codes != 0]).tolist():
            reason = Reason(code)
            where = np.flatnonzero(codes == code)
            target = unresolvable if reason.unresolvable else failed
            if reason is Reason.NODE_UNAVAILABLE:  # each node has its own reason
                for i in where.tolist():
                    target[cands.labels[i]] = self._message(reason, int(fit.rows[i]))
            else:
                target.update(dict.fromkeys(cands.labels[where].tolist(), reason.message))
        ok = np.flatnonzero(codes == 0)
        ok = ok[np.argsort(cands.position[ok], kind="stable")]  # back to the caller's order
        passed = cands.labels[ok].tolist()
        kept = self.gates.refine(pod, passed, unresolvable)  # quotas in A100-equivalents: per node
        if len(kept) < len(passed):
            passed, ok = kept, ok[np.isin(cands.labels[ok], kept)]
        self.gates.after_filter(pod, bool(passed))
        self._last_fit = (pod.uid, self.state.generation, passed, fit.rows[ok], fit.slot_fit[ok])
        return FilterAnswer(passed, failed, unresolvable)

    def place(self, pod: PodRequest, node: str, *, slots: tuple[int, ...] | None = None,
              **record: object) -> Allocation:
        """Check `pod` on `node`, pick its GPUs (or take `slots`), and record the allocation."""
        row = self.state.index.get(node)
        if row is None:
            raise BindRejected(f"node {node} is unknown to gpusched")
        fit = filters.fit(self.state, pod, np.array([row]), self._models(pod))
        code = Reason(int(fit.codes[0]))
        if code is not Reason.FITS:
            raise BindRejected(f"node {node} no longer fits {pod.key}: {self._message(code, row)}")
        if slots is None:
            slots = self.policy_of(pod).pick(self.state, pod, row, fit.slot_fit[0], self._ctx())
        slots = tuple(int(s) for s in slots)
        fields, refused = self.gates.record_fields(pod, row, slots)
        if refused:
            raise BindRejected(refused)
        self._sequence += 1
        alloc = self._allocation(pod, row, slots, **{**fields, "sequence": self._sequence, **record})
        self.state.apply(row, alloc.grant)
        self._record(alloc)
        return alloc

    def _fits_after(self, pod: PodRequest, row: int, evicted: Sequence[str]) -> bool:
        grants = [self.allocations[u].grant for u in evicted]
        for grant in grants:
            self.state.release(row, grant)
        try:
            return bool(filters.fit(self.state, pod, np.array([row]), self._models(pod)).codes[0] == 0)
        finally:
            for grant in grants:
                self.state.restore(row, grant)


class ReferenceService(ExtenderService):
    def filter(self, args: wire.ExtenderArgs) -> bytes:
        names = args.names
        try:
            pod = parse_pod(args.pod)
        except InvalidRequest as e:
            self.metrics.rejections.labels("invalid_request").inc(len(names))
            return encode_filter_result(passed=[], failed={}, unresolvable=dict.fromkeys(names, f"invalid GPU request: {e}"),
                                        nodes=args.nodes)
        answer = self.engine.filter(pod, names)
        self._flush_records()
        self._count_rejections(answer.failed)
        self._count_rejections(answer.unresolvable)
        passed = answer.passed
        if self.decide_in_filter and len(passed) > 1:
            scores = self.engine.score_array(pod, passed)
            best = np.flatnonzero(scores == np.nanmax(scores))
            passed = [min(passed[i] for i in best.tolist())]
        return encode_filter_result(passed=passed, failed=answer.failed, unresolvable=answer.unresolvable,
                                    nodes=args.nodes)

    def prioritize(self, args: wire.ExtenderArgs) -> bytes:
        names = args.names
        try:
            pod = parse_pod(args.pod)
        except InvalidRequest:
            return wire.encode_host_priorities([(n, 0) for n in names])
        scaled = wire.scale_array(self.engine.score_array(pod, names), self.engine.policy_of(pod).span)
        return wire.encode_host_priorities(list(zip(names, scaled.tolist(), strict=True)))

    def _count_rejections(self, reasons: dict[str, str]) -> None:
        if not reasons:
            return
        for message, n in Counter(reasons.values()).items():
            label = _REASON_NAMES.get(message) or _GATE_LABELS.get(message.split(" ", 1)[0], "other")
            self.metrics.rejections.labels(label).inc(n)


def encode_filter_result(*, passed: Sequence[str], failed: Mapping[str, str], unresolvable: Mapping[str, str],
                         nodes: Sequence[Mapping[str, Any]] | None = None, error: str = "") -> bytes:
    if nodes is not None:
        keep = set(passed)
        node_list: dict[str, Any] | None = {
            "metadata": {}, "items": [n for n in nodes if (n.get("metadata") or {}).get("name") in keep]}
        names: list[str] | None = None
    else:
        node_list, names = None, list(passed)
    return orjson.dumps({"Nodes": node_list, "NodeNames": names, "FailedNodes": dict(failed),
                         "FailedAndUnresolvableNodes": dict(unresolvable), "Error": error})


decode_extender_args = wire._decode_extender_args
"""The lenient decoder: every body went through it before the typed one."""

