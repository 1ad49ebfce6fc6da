"""A real extender on loopback: `server` starts one over a cluster file and yields (service, url, http)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from scheduler.clusterfile import load_cluster
from scheduler.core.engine import EngineSettings
from scheduler.extender.server import cluster_service, start

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "clusters"


@pytest.fixture
def cluster_path():
    return GOLDEN / "cluster.yaml"


@pytest.fixture
def policy():
    return "binpack"


@pytest.fixture
async def server(cluster_path, policy):
    service = cluster_service(load_cluster(cluster_path), settings=EngineSettings(policy=policy))
    running = await start(service)
    async with aiohttp.ClientSession() as http:
        yield service, running.url, http
    await running.close()
