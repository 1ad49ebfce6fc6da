"""Drive an extender over HTTP the way kube-scheduler does (extender-protocol.md §2.2).

One keep-alive session; every message in the exact wire shape kube-scheduler sends (all keys
present, unused pointers null). `schedule_one` runs one scheduling cycle: filter, prioritize
when two or more nodes survive, pick the best score (ties broken by the caller's `tie_break`),
bind. Used by the demo, the simulator's `--via-http` mode and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


class ExtenderCallError(RuntimeError):
    """The extender answered something kube-scheduler would treat as a failed call."""


@dataclass
class Cycle:
    """What happened to one pod in one scheduling cycle."""

    pod: str
    node: str | None
    scores: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def reasons(self) -> dict[str, int]:
        """kube-scheduler's "0/N nodes are available" histogram of reasons."""
        out: dict[str, int] = {}
        for message in [*self.unresolvable.values(), *self.failed.values()]:
            out[message] = out.get(message, 0) + 1
        return out


class ExtenderClient:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                              connector=aiohttp.TCPConnector(limit=4, force_close=False))

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> ExtenderClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def call(self, verb: str, message: Mapping[str, Any]) -> Any:
        body = orjson.dumps(message)
        async with self._session.post(f"{self.base_url}/{verb}", data=body,
                                      headers={"Content-Type": "application/json"}) as response:
            payload = await response.read()
            if response.status != 200:
                raise ExtenderCallError(f"failed {verb} with extender at URL {self.base_url}/{verb}, "
                                        f"code {response.status}: {payload[:200].decode(errors='replace')}")
        return orjson.loads(payload)

    async def filter(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> dict[str, Any]:
        return await self.call("filter", {"Pod": pod, "Nodes": None, "NodeNames": list(nodes)})

    async def prioritize(self, pod: Mapping[str, Any], nodes: Sequence[str]) -> list[dict[str, Any]]:
        return await self.call("prioritize", {"Pod": pod, "Nodes": None, "NodeNames": list(nodes)})

    async def bind(self, pod: Mapping[str, Any], node: str) -> str:
        meta = pod["metadata"]
        result = await self.call("bind", {"PodName": meta["name"], "PodNamespace": meta.get("namespace", "default"),
                                          "PodUID": meta["uid"], "Node": node})
        return result.get("Error", "")

    async def release(self, uid: str) -> str:
        return (await self.call("release", {"PodUID": uid})).get("Error", "")

    async def schedule_one(self, pod: Mapping[str, Any], nodes: Sequence[str],
                           tie_break: Callable[[list[str]], str] = min) -> Cycle:
        """One kube-scheduler cycle for `pod` over candidate `nodes` (those that passed in-tree filters)."""
        meta = pod["metadata"]
        cycle = Cycle(pod=f"{meta.get('namespace', 'default')}/{meta['name']}", node=None)
        result = await self.filter(pod, nodes)
        if result.get("Error"):
            cycle.error = result["Error"]
            return cycle
        cycle.failed = result.get("FailedNodes") or {}
        cycle.unresolvable = result.get("FailedAndUnresolvableNodes") or {}
        feasible = result.get("NodeNames") or []
        if not feasible:
            return cycle
        if len(feasible) == 1:
            chosen = feasible[0]
        else:
            scores = {p["Host"]: p["Score"] for p in await self.prioritize(pod, feasible)}
            cycle.scores = scores
            top = max(scores.get(n, 0) for n in feasible)
            chosen = tie_break(sorted(n for n in feasible if scores.get(n, 0) == top))
        error = await self.bind(pod, chosen)
        if error:
            cycle.error = error
            return cycle
        cycle.node = chosen
        return cycle
