"""The verbs a simulation drives a `serve --cluster --virtual-clock` extender with, and where they are not served."""

import aiohttp
import pytest

from scheduler.clusterfile import load_cluster
from scheduler.core.engine import EngineSettings
from scheduler.extender.server import cluster_service, start
from simulator.extender_client import ExtenderClient
from tests.builders import pod
from tests.extender.conftest import EXAMPLES, GOLDEN


@pytest.fixture
async def simulated():
    service = cluster_service(load_cluster(EXAMPLES / "mixed.yaml"), settings=EngineSettings(seed=7), clock=None)
    running = await start(service, simulated_time=True)
    async with aiohttp.ClientSession() as http:
        yield service, running.url, http
    await running.close()


async def test_state_says_the_clock_and_seed_and_the_clock_only_moves_forward(simulated):
    _service, url, _ = simulated
    async with ExtenderClient(url) as client:
        assert {k: (await client.state())[k] for k in ("clock", "now", "seed")} == {"clock": "simulated", "now": 0,
                                                                                    "seed": 7}
        assert (await client.call("clock", {"Now": 120.5}))["Error"] == ""
        assert (await client.call("clock", {"Now": 60}))["Error"] == ""
        assert (await client.state())["now"] == 120.5


async def test_a_gpu_failure_reaches_the_books(simulated):
    _service, url, _ = simulated
    async with ExtenderClient(url) as client:
        assert (await client.call("gpu-health", {"Node": "a100-0", "UnhealthyGPUs": [3]}))["Error"] == ""
        gpus = next(n for n in (await client.state())["nodes"] if n["name"] == "a100-0")["gpus"]
        assert [g["healthy"] for g in gpus].count(False) == 1 and not gpus[3]["healthy"]
        assert (await client.schedule_one(pod("all").gpus(8).build(), ["a100-0"])).node is None
        assert "no node" in (await client.call("gpu-health", {"Node": "nope", "UnhealthyGPUs": []}))["Error"]


async def test_a_pending_pod_is_taken_and_a_bad_one_named(simulated):
    _service, url, _ = simulated
    async with ExtenderClient(url) as client:
        assert (await client.call("pending", {"Pod": pod("waits").gpus(1).build()}))["Error"] == ""
        error = (await client.call("pending", {"Pod": pod("bad").gpus(1).share(500).build()}))["Error"]
        assert error.startswith("invalid GPU request: ")


@pytest.mark.parametrize(("verb", "body"), [
    ("clock", b'{"Now": -1}'), ("clock", b'{"Now": "soon"}'), ("clock", b'{"Now": true}'), ("clock", b"[]"),
    ("clock", b'{"Now": 1e400}'), ("pending", b'{"Pod": 3}'), ("gpu-health", b'{"Node": "a100-0"}'),
    ("gpu-health", b'{"Node": "a100-0", "UnhealthyGPUs": [true]}'), ("gpu-health", b"{nope"),
])
async def test_malformed_bodies_get_a_400_and_change_nothing(simulated, verb, body):
    service, url, http = simulated
    before = service.state()
    async with http.post(f"{url}/{verb}", data=body) as response:
        assert response.status == 400
        assert (await response.json())["Error"].startswith(verb)
    assert service.state() == before


async def test_a_live_or_wall_clock_extender_serves_none_of_them(server):
    """The `server` fixture is a plain `serve --cluster`; a live cluster's starts without /release too."""
    _service, url, http = server
    for verb in ("clock", "pending", "gpu-health"):
        async with http.post(f"{url}/{verb}", data=b"{}") as response:
            assert response.status == 404
    service = cluster_service(load_cluster(GOLDEN / "cluster.yaml"))
    running = await start(service, release_verb=False)
    try:
        async with http.post(f"{running.url}/release", data=b'{"PodUID": "x"}') as response:
            assert response.status == 404
    finally:
        await running.close()
