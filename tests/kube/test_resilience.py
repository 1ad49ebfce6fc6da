"""The adapter's background work survives API answers it cannot read and bugs of its own.

Before: an answer that was not JSON escaped `KubeClient.call` as a decode error, and any exception
ended the reclaimer's, the Lease elector's, the heartbeat sweep's or a reflector's loop for good,
silently (the elector keeping `is_leader` as it was: a replica that believed it led with nobody
renewing its Lease).
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from scheduler.core.quotas import team_from_resource_quotas
from scheduler.kube.client import ApiError, ClientSettings, KubeClient
from scheduler.kube.leader import LeaderElector, LeaseSettings
from scheduler.kube.reclaimer import Reclaimer
from scheduler.kube.reflector import Reflector, ReflectorSettings, Resource
from scheduler.kube.sync import KubeSync, SyncSettings
from tests.kube.conftest import eventually
from tests.kube.objects import node


class NotJsonResponse:
    """What urllib3 hands back when a proxy answers 200 with its own error page."""

    data = b"<html><body>502 Bad Gateway</body></html>"

    def release_conn(self) -> None:
        pass


async def test_an_answer_that_is_not_json_is_an_api_error(kube_api):
    client = KubeClient(kube_api.configuration(), settings=ClientSettings(request_timeout_s=2.0))
    seen = []
    client.on_call.append(lambda operation, code: seen.append((operation, code)))
    try:
        with pytest.raises(ApiError) as raised:
            await client.call("read pod", lambda *a, **kw: NotJsonResponse())
    finally:
        client.close()
    assert (raised.value.code, raised.value.reason, raised.value.transient) == (0, "InvalidResponse", True)
    assert seen == [("read pod", 0)]


async def test_the_reclaimer_keeps_going_after_a_failed_round(caplog):
    rounds = []

    def plan():
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("bug in the plan")
        return []

    reclaimer = Reclaimer(SimpleNamespace(), plan=plan, is_leader=lambda: True, interval_s=0.01)
    task = asyncio.create_task(reclaimer.run())
    try:
        await eventually(lambda: len(rounds) >= 3, what="more rounds after the failed one")
    finally:
        task.cancel()
    assert "reclaim round failed" in caplog.text and "bug in the plan" in caplog.text


class ScriptedLeaseClient:
    """A client whose Lease calls answer from a script: a lease nobody holds, then a bug."""

    def __init__(self) -> None:
        self.coordination = SimpleNamespace(read_namespaced_lease="read", replace_namespaced_lease="replace",
                                            create_namespaced_lease="create")
        self.calls = 0
        self.broken = False

    async def call(self, operation, method, *args, **kwargs):
        self.calls += 1
        if self.broken:
            raise RuntimeError("bug while electing")
        if method == "read":
            return {"metadata": {"resourceVersion": str(self.calls)}, "spec": {"holderIdentity": ""}}
        return {}


async def test_the_elector_steps_down_on_a_failed_round_and_keeps_trying(caplog):
    client = ScriptedLeaseClient()
    elector = LeaderElector(client, LeaseSettings(identity="r1", lease_duration_s=1.5, renew_deadline_s=1.0,
                                                  retry_period_s=0.01))
    task = asyncio.create_task(elector.run())
    try:
        await eventually(lambda: elector.is_leader, what="the lease")
        client.broken = True
        calls = client.calls
        await eventually(lambda: not elector.is_leader, what="stepping down")
        await eventually(lambda: client.calls >= calls + 3, what="more election rounds")
        client.broken = False
        await eventually(lambda: elector.is_leader, what="the lease again")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "election round failed" in caplog.text


class LateRenewalClient:
    """Holds the lease for r1; a renewal cancelled on shutdown lands between release's read and write."""

    def __init__(self, conflicts: int) -> None:
        self.coordination = SimpleNamespace(read_namespaced_lease="read", replace_namespaced_lease="replace")
        self.version = 1
        self.conflicts = conflicts
        self.written: list[dict] = []

    async def call(self, operation, method, *args, **kwargs):
        if method == "read":
            return {"metadata": {"resourceVersion": str(self.version)}, "spec": {"holderIdentity": "r1"}}
        if self.conflicts:
            self.conflicts -= 1
            self.version += 1  # the late renewal wrote first
            raise ApiError(409, "Conflict", "the object has been modified")
        self.written.append(args[2]["spec"])
        return {}


@pytest.mark.parametrize(("conflicts", "released"), [(0, True), (1, True), (2, True), (3, False)])
async def test_shutdown_gives_the_lease_up_even_after_a_late_renewal(conflicts, released, caplog):
    caplog.set_level(logging.INFO, logger="scheduler.kube.leader")
    client = LateRenewalClient(conflicts)
    elector = LeaderElector(client, LeaseSettings(identity="r1"), sleep=lambda _: asyncio.sleep(0))
    await elector.release()
    assert [spec["holderIdentity"] for spec in client.written] == ([""] if released else [])
    assert ("not released" in caplog.text) is not released


class InFlightLeaseClient:
    """A lease store whose writes land at once but whose answers wait for `answer` (a slow API)."""

    def __init__(self) -> None:
        self.coordination = SimpleNamespace(read_namespaced_lease="read", replace_namespaced_lease="replace")
        self.lease = {"metadata": {"resourceVersion": "1"}, "spec": {"holderIdentity": ""}}
        self.landed = asyncio.Event()
        self.answer = asyncio.Event()

    async def call(self, operation, method, *args, **kwargs):
        if method == "read":
            return {"metadata": dict(self.lease["metadata"]), "spec": dict(self.lease["spec"])}
        body = args[2]
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        version = str(int(self.lease["metadata"]["resourceVersion"]) + 1)
        self.lease = {"metadata": {"resourceVersion": version}, "spec": dict(body["spec"])}
        self.landed.set()
        await self.answer.wait()
        return {}


async def test_shutdown_during_an_acquisition_that_already_landed_gives_the_lease_up():
    client = InFlightLeaseClient()
    elector = LeaderElector(client, LeaseSettings(identity="r1", retry_period_s=0.01))
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(client.landed.wait(), 5)
    assert client.lease["spec"]["holderIdentity"] == "r1" and not elector.is_leader  # written, not yet answered
    task.cancel()
    await asyncio.sleep(0)
    client.answer.set()
    await asyncio.gather(task, return_exceptions=True)
    assert client.lease["spec"]["holderIdentity"] == ""


class FailingOnceSink:
    def __init__(self) -> None:
        self.lists: list[int] = []

    def replace(self, kind, items) -> None:
        self.lists.append(len(items))
        if len(self.lists) == 1:
            raise RuntimeError("bug while applying a list")

    def apply(self, kind, event, obj) -> None:
        pass


async def test_a_reflector_lists_again_when_applying_a_list_fails(kube_api, caplog):
    kube_api.put(node("a", gpus=1))
    client = KubeClient(kube_api.configuration(), settings=ClientSettings(request_timeout_s=2.0))
    sink = FailingOnceSink()
    reflector = Reflector(client, Resource("nodes", lambda c: c.core.list_node), sink,
                          settings=ReflectorSettings(watch_timeout_s=5, stall_s=2.0))
    task = asyncio.create_task(reflector.run())
    try:
        await asyncio.wait_for(reflector.synced.wait(), 5)
    finally:
        reflector.stop()
        await asyncio.gather(task, return_exceptions=True)
        client.close()
    assert sink.lists == [1, 1]
    assert "applying the list failed" in caplog.text


@pytest.mark.parametrize(("hard", "milli"), [
    ({"requests.nvidia.com/gpu": "-1"}, None),
    ({"requests.nvidia.com/gpu": "-1", "requests.gpusched.io/gpu-milli": "500"}, 500),
], ids=["negative-only", "negative-and-a-share"])
def test_a_negative_resource_quota_limits_nothing(hard, milli):
    # the API server refuses negative quotas; one that got through used to raise out of the watch
    team = team_from_resource_quotas("ml", [hard])
    assert (team.guaranteed_milli if team else None) == milli


class FailingOnceCache:
    def __init__(self) -> None:
        self.sweeps = 0

    def sweep(self) -> None:
        self.sweeps += 1
        if self.sweeps == 1:
            raise RuntimeError("bug while sweeping")


async def test_the_sweep_keeps_going_after_a_failed_one(kube_api, caplog):
    client = KubeClient(kube_api.configuration(), settings=ClientSettings(request_timeout_s=2.0))
    cache = FailingOnceCache()
    sync = KubeSync(client, cache, settings=SyncSettings(sweep_interval_s=0.01))
    task = asyncio.create_task(sync._sweep())
    try:
        await eventually(lambda: cache.sweeps >= 3, what="more sweeps after the failed one")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        client.close()
    assert "bug while sweeping" in caplog.text
