"""Drivers that play kube-scheduler against gpusched, in-process or over real HTTP on loopback.

Every scenario runs through both: `driver` is parametrised, and a test builds its cluster with
`await make(nodes, quotas=..., gangs=...)`. A cycle is kube-scheduler's: filter, prioritize when
two or more nodes pass, bind the best (ties to the smallest name).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from scheduler.clusterfile import ClusterSpec
from scheduler.configfile import GatesConfig, PodGroup
from scheduler.core.gangs import GangSettings
from scheduler.core.model import Node
from scheduler.core.quotas import QuotaConfig
from scheduler.core.request import parse_pod
from scheduler.extender.server import cluster_service, start
from scheduler.extender.wire import scale_scores
from simulator.extender_client import ExtenderClient


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Outcome:
    pod: str
    node: str | None
    unresolvable: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def reasons(self) -> set[str]:
        return set(self.unresolvable.values()) | set(self.failed.values())


class Driver(ABC):
    kind = ""

    def __init__(self, service, names: list[str], clock: FakeClock) -> None:
        self.service = service
        self.engine = service.engine
        self.names = names
        self.clock = clock

    @abstractmethod
    async def cycle(self, pod: dict[str, Any], names: Sequence[str] | None = None) -> Outcome:
        """One scheduling cycle for the pod: filter, prioritize, bind."""

    @abstractmethod
    async def release(self, uid: str) -> None:
        """The pod leaves (deleted or finished)."""

    @abstractmethod
    async def state(self) -> dict[str, Any]:
        """The books as GET /state shows them."""

    async def sweep(self) -> None:
        """What the app's background sweeper does every few seconds."""
        self.service.expire()

    async def settle(self, pods: Sequence[dict[str, Any]], *, rounds: int = 3) -> dict[str, str]:
        """Cycle every pod not yet bound, `rounds` times (kube-scheduler's retries); pod key -> node."""
        placed: dict[str, str] = {}
        for pod in pods:
            alloc = self.engine.allocations.get(pod["metadata"]["uid"])
            if alloc is not None:
                placed[alloc.key] = alloc.node
        for _ in range(rounds):
            for pod in pods:
                key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                if key not in placed:
                    outcome = await self.cycle(pod)
                    if outcome.node:
                        placed[key] = outcome.node
        return placed

    async def close(self) -> None:
        """Nothing to stop in-process; the HTTP driver stops its server."""
        return None


class InProcess(Driver):
    kind = "in-process"

    async def cycle(self, pod, names=None):
        names = list(names or self.names)
        request = parse_pod(pod)
        answer = self.engine.filter(request, names)
        self.service._flush_records()
        out = Outcome(request.key, None, dict(answer.unresolvable), dict(answer.failed))
        if not answer.passed:
            return out
        chosen = answer.passed[0]
        if len(answer.passed) > 1:
            scores = dict(scale_scores(self.engine.scores(request, answer.passed), self.engine.policy_of(request).span))
            top = max(scores.values())
            chosen = min(n for n in answer.passed if scores[n] == top)
        result = orjson.loads(await self.service.bind(_binding(pod, chosen)))
        out.error = result["Error"]
        out.node = None if out.error else chosen
        return out

    async def release(self, uid):
        await self.service.release(uid)

    async def state(self):
        return orjson.loads(orjson.dumps(self.service.state()))


class Http(Driver):
    kind = "http"

    async def open(self) -> Http:
        self.server = await start(self.service)
        self.client = ExtenderClient(self.server.url)
        return self

    async def cycle(self, pod, names=None):
        cycle = await self.client.schedule_one(pod, list(names or self.names))
        return Outcome(cycle.pod, cycle.node, cycle.unresolvable, cycle.failed, cycle.error)

    async def release(self, uid):
        await self.client.release(uid)

    async def state(self):
        async with self.client._session.get(self.server.url + "/state") as response:
            return await response.json()

    async def metrics(self) -> str:
        async with self.client._session.get(self.server.url + "/metrics") as response:
            return await response.text()

    async def close(self):
        await self.client.close()
        await self.server.close()


def _binding(pod: dict[str, Any], node: str):
    from scheduler.extender.wire import BindingArgs
    meta = pod["metadata"]
    return BindingArgs(meta["name"], meta["namespace"], meta["uid"], node)


@pytest.fixture(params=["in-process", "http"])
async def make(request):
    """make(nodes, quotas=..., gangs=..., pod_groups=..., journal=...) -> a started driver."""
    drivers: list[Driver] = []

    async def build(node_list: list[Node], *, quotas: QuotaConfig | None = None, gangs: GangSettings | None = None,
                    pod_groups: Sequence[tuple[str, str, int]] = (), pods=(), journal=None,
                    clock: FakeClock | None = None) -> Driver:
        clock = clock or FakeClock()
        gates = GatesConfig(quotas or QuotaConfig(), gangs or GangSettings(),
                            tuple(PodGroup(*g) for g in pod_groups))
        service = cluster_service(ClusterSpec(list(node_list), list(pods)), gates=gates, clock=clock,
                                  journal=journal)
        names = [n.name for n in node_list]
        driver = await Http(service, names, clock).open() if request.param == "http" else InProcess(
            service, names, clock)
        drivers.append(driver)
        return driver

    yield build
    for driver in drivers:
        await driver.close()
