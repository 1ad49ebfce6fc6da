"""Fixtures for the Kubernetes adapter's tests: the fake API server and gpusched replicas on it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import aiohttp
import pytest

from scheduler.core.engine import EngineSettings
from scheduler.kube.binder import BinderSettings
from scheduler.kube.client import ClientSettings, KubeClient
from scheduler.kube.leader import LeaseSettings
from scheduler.kube.reclaimer import Victim
from scheduler.kube.reflector import ReflectorSettings
from scheduler.kube.runtime import KubeExtender, KubeServeSettings
from scheduler.kube.sync import SyncSettings
from tests.fakes.kubeapi import KubeApiFake


@pytest.fixture
def kube_api() -> Iterator[KubeApiFake]:
    """The shared fake, with quick bookmarks and the tests' namespace `ml` already there."""
    with KubeApiFake(bookmark_interval=0.5) as fake:
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
        yield fake


def fast_settings(**overrides) -> KubeServeSettings:
    base = dict(port=0, webhook_port=0, webhook_host="127.0.0.1",
                sync=SyncSettings(reflector=ReflectorSettings(watch_timeout_s=30, stall_s=5.0, page_size=50),
                                  sweep_interval_s=0.2),
                binder=BinderSettings(deadline_s=3.0), reclaim_interval_s=3600)
    base.update(overrides)
    return KubeServeSettings(**base)


def lease(identity: str) -> LeaseSettings:
    return LeaseSettings(name="gpu-extender", namespace="default", identity=identity, lease_duration_s=1.5,
                         renew_deadline_s=1.0, retry_period_s=0.2)


@contextlib.asynccontextmanager
async def replica(kube_api: KubeApiFake, *, plan: Callable[[], Sequence[Victim]] = lambda: (),
                  **overrides) -> AsyncIterator[KubeExtender]:
    client = KubeClient(kube_api.configuration(), settings=ClientSettings(request_timeout_s=5.0))
    extender = KubeExtender(client, settings=fast_settings(**overrides), engine_settings=EngineSettings(), plan=plan)
    await extender.start()
    try:
        yield extender
    finally:
        await extender.stop()


async def eventually(check: Callable[[], object], *, timeout: float = 5.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def post(url: str, body: dict) -> dict:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json(content_type=None)


async def get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json(content_type=None)


async def schedule(extender: KubeExtender, pod: dict, nodes: Sequence[str]) -> tuple[list[str], str]:
    """What kube-scheduler does for one pod: filter, pick the first passing node, bind. (passed, bind error)"""
    answer = await post(f"{extender.verbs.url}/filter", {"Pod": pod, "Nodes": None, "NodeNames": list(nodes)})
    passed = answer["NodeNames"] or []
    if not passed:
        return [], "no node fits"
    meta = pod["metadata"]
    result = await post(f"{extender.verbs.url}/bind", {"PodName": meta["name"], "PodNamespace": meta["namespace"],
                                                       "PodUID": meta["uid"], "Node": passed[0]})
    return passed, result["Error"]
