"""The extender never answers 500: malformed bodies are 400s, everything else (odd but well-formed
input, a disk that fills up, a bug of ours) is a 200 that says what went wrong.

Each case here was a 500 before it was fixed; the bug cases use a faulty engine (a fake) to stand
for whatever bug is left.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from scheduler.clusterfile import load_cluster
from scheduler.core.engine import Engine
from scheduler.extender.durable import AppendOnlyFile
from scheduler.extender.server import cluster_service, start
from scheduler.extender.service import ExtenderService
from scheduler.extender.statefile import StateJournal
from scheduler.extender.webhook import WebhookSettings, add_webhook_routes
from tests.builders import node, pod
from tests.extender.conftest import EXAMPLES


async def post(http, url: str, body) -> tuple[int, object]:
    async with http.post(url, data=orjson.dumps(body)) as response:
        return response.status, orjson.loads(await response.read())


@pytest.fixture
def cluster_path():
    return EXAMPLES / "mixed.yaml"


GPU_POD = pod("p").gpus(1).build()


@pytest.mark.parametrize(("verb", "body"), [
    ("filter", {"Pod": GPU_POD, "Nodes": {"items": [{"metadata": "a100-0"}]}, "NodeNames": None}),
    ("prioritize", {"Pod": GPU_POD, "Nodes": {"items": [{"metadata": ["a100-0"]}]}, "NodeNames": None}),
    ("preempt", {"Pod": GPU_POD, "NodeNameToVictims": {"a100-0": {"Pods": [{"metadata": "uid-1"}]}},
                 "NodeNameToMetaVictims": None}),
], ids=["filter-node-metadata-not-an-object", "prioritize-node-metadata-a-list", "preempt-victim-metadata-a-string"])
async def test_malformed_extender_messages_are_400s(server, verb, body):
    service, url, http = server
    before = service.state()
    status, answer = await post(http, f"{url}/{verb}", body)
    assert status == 400 and answer["Error"].startswith(f"{verb}: ")
    assert service.state() == before


def review_of(containers: object) -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "r1", "kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": "ml",
                        "object": {"metadata": {"name": "p"},
                                   "spec": {"schedulerName": "gpu-scheduler", "containers": containers}}}}


def share_container(env: object) -> dict:
    return {"name": "c", "resources": {"limits": {"gpusched.io/gpu-milli": "500"}}, "env": env}


@contextlib.asynccontextmanager
async def webhook_at(settings) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """The webhook routes alone on a free loopback port: (URL of /mutate, a session)."""
    app = web.Application()
    add_webhook_routes(app, settings=settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as http:
            yield f"http://127.0.0.1:{port}/mutate", http
    finally:
        await runner.cleanup()


@pytest.fixture
async def webhook():
    async with webhook_at(WebhookSettings()) as served:
        yield served


@pytest.mark.parametrize(("containers", "allowed"), [
    ([share_container([{"name": ["NVIDIA_VISIBLE_DEVICES"], "value": "all"}])], True),
    ([share_container([{"name": {"x": 1}}, {"name": None}, "not-an-entry"])], True),
], ids=["env-name-a-list", "env-names-odd"])
async def test_odd_admission_reviews_get_an_answer(webhook, containers, allowed):
    url, http = webhook
    status, answer = await post(http, url, review_of(containers))
    assert status == 200 and answer["response"]["uid"] == "r1" and answer["response"]["allowed"] is allowed
    patch = orjson.loads(base64.b64decode(answer["response"]["patch"]))
    assert any("NVIDIA_VISIBLE_DEVICES" in orjson.dumps(op).decode() for op in patch)  # the share is still enforced


async def test_a_release_the_state_file_cannot_record_is_refused_and_changes_nothing(tmp_path):
    journal = StateJournal(tmp_path / "state.jsonl")
    service = cluster_service(load_cluster(EXAMPLES / "mixed.yaml"), journal=journal)
    running = await start(service)
    try:
        async with aiohttp.ClientSession() as http:
            built = pod("p").gpus(1).build()
            names = list(service.engine.state.index)
            status, answer = await post(http, f"{running.url}/filter", {"Pod": built, "NodeNames": names})
            node_name = answer["NodeNames"][0]
            meta = built["metadata"]
            await post(http, f"{running.url}/bind", {"PodName": meta["name"], "PodNamespace": meta["namespace"],
                                                     "PodUID": meta["uid"], "Node": node_name})
            assert meta["uid"] in service.engine.allocations
            journal._file.close()
            journal._file = AppendOnlyFile(Path("/dev/full"))  # the disk is full from now on
            status, answer = await post(http, f"{running.url}/release", {"PodUID": meta["uid"]})
            assert status == 200 and "No space left on device" in answer["Error"]
            assert meta["uid"] in service.engine.allocations  # a restart would bring it back: not released
    finally:
        await running.close()


class FaultyEngine(Engine):
    """An engine with a bug in every verb."""

    def filter(self, pod, names):
        raise RuntimeError("bug in filter")

    def score_array(self, pod, names):
        raise RuntimeError("bug in prioritize")

    def scored(self, pod, names):
        raise RuntimeError("bug in prioritize")

    def preempt(self, pod, victims):
        raise RuntimeError("bug in preempt")

    def bind(self, uid, namespace, name, node):
        raise RuntimeError("bug in bind")

    def release(self, uid, *, leaving=True):
        raise RuntimeError("bug in release")


BIND = {"PodName": "p", "PodNamespace": "ml", "PodUID": "u1", "Node": "a"}


@pytest.mark.parametrize(("verb", "body", "expected"), [
    ("filter", {"Pod": GPU_POD, "NodeNames": ["a"]},
     {"Nodes": None, "NodeNames": None, "FailedNodes": None, "FailedAndUnresolvableNodes": None,
      "Error": "gpusched filter failed: internal error (RuntimeError: bug in filter)"}),
    ("prioritize", {"Pod": GPU_POD, "NodeNames": ["a"]}, []),
    ("preempt", {"Pod": GPU_POD, "NodeNameToMetaVictims": {"a": {"Pods": [{"UID": "v"}]}}},
     {"NodeNameToMetaVictims": {}}),
    ("bind", BIND, {"Error": "gpusched bind failed: internal error (RuntimeError: bug in bind)"}),
    ("release", {"PodUID": "u1"}, {"Error": "gpusched release failed: internal error (RuntimeError: bug in release)"}),
], ids=["filter", "prioritize", "preempt", "bind", "release"])
async def test_a_bug_is_a_200_with_an_error_not_a_500(verb, body, expected, caplog):
    service = ExtenderService(FaultyEngine([node("a").gpus(2).build()]))
    running = await start(service)
    try:
        async with aiohttp.ClientSession() as http:
            assert await post(http, f"{running.url}/{verb}", body) == (200, expected)
    finally:
        await running.close()
    assert f"{verb} failed" in caplog.text and "Traceback" in caplog.text


class BrokenWebhookSettings:
    share_runtime_class = ""

    @property
    def scheduler_name(self) -> str:
        raise RuntimeError("bug in the webhook")


async def test_a_webhook_bug_denies_the_pod_instead_of_a_500():
    async with webhook_at(BrokenWebhookSettings()) as (url, http):
        status, answer = await post(http, url, review_of([share_container([])]))
    assert status == 200
    assert answer["response"]["uid"] == "r1" and answer["response"]["allowed"] is False
    assert answer["response"]["status"]["message"].startswith("gpusched webhook failed: internal error (RuntimeError")
