"""Pods parsed once per body: kube-scheduler sends the same Pod JSON to filter, then prioritize.

Parsing a pod (quantities, annotations, selectors) cost as much as the vectorised filter over
500 nodes; the prioritize that follows its filter carries the very same bytes. `parse_pod` is a
pure function of the pod's JSON, so an answer kept by those bytes is the answer parsing would
give, refusals (`InvalidRequest`) included. Bounded: the least recently used body goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from scheduler.core.request import InvalidRequest, PodRequest, parse_pod

LIMIT = 256
"""Bodies kept: a serial scheduler needs the last one or two; concurrent retries a few more."""


class PodCache:
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._parsed: OrderedDict[bytes, PodRequest | InvalidRequest] = OrderedDict()

    def parse(self, pod: Mapping[str, Any], pod_json: bytes | None) -> PodRequest:
        """`parse_pod(pod)`, where `pod_json` (None: unknown) are the bytes `pod` was decoded from."""
        if pod_json is None:
            return parse_pod(pod)
        answer = self._parsed.get(pod_json)
        if answer is None:
            try:
                answer = parse_pod(pod)
            except InvalidRequest as e:
                answer = e
            self._parsed[pod_json] = answer
            if len(self._parsed) > self.limit:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(pod_json)
        if isinstance(answer, InvalidRequest):
            raise InvalidRequest(*answer.args)
        return answer
