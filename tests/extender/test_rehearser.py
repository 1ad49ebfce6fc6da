"""The server plays fgd-plus's rehearsals off the scheduling path (`extender.rehearser`)."""

import asyncio
import logging
import time
from types import SimpleNamespace

import aiohttp
import pytest

from scheduler.cli.serve import settings_from
from scheduler.clusterfile import load_cluster
from scheduler.core.engine import EngineSettings
from scheduler.core.rehearsal_board import Rehearsals, Verdict
from scheduler.extender import rehearser
from scheduler.extender.server import cluster_service, start
from simulator.extender_client import ExtenderClient
from tests.builders import pod
from tests.extender.conftest import EXAMPLES


async def test_a_served_extender_answers_at_once_and_settles_the_rehearsal_behind(monkeypatch):
    monkeypatch.setattr(rehearser, "POLL_S", 2.0)  # the board is first looked at 2 s after the start
    service = cluster_service(load_cluster(EXAMPLES / "mixed.yaml"),
                              settings=EngineSettings(policy="fgd-plus", rehearse_off_path=True))
    board = service.engine.rehearsals
    assert board is not None
    running = await start(service)
    try:
        nodes = list(service.engine.state.index)
        async with ExtenderClient(running.url) as client:
            # a pod tied to a model gives fgd-plus's model term something to say, so it rehearses
            cycle = await client.schedule_one(pod("train").gpus(1).models("H100*").build(), nodes)
            assert cycle.node == "h100-0"
            assert board.settled == 0  # answered with FGD's order; the rehearsal is still to play
            deadline = time.monotonic() + 30
            while not board.settled and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert board.settled == 1
            await client.schedule_one(pod("train-2").gpus(1).models("H100*").build(), nodes)
        assert board.wanted() is None  # the verdict now decides; nothing more to play
        async with aiohttp.ClientSession() as http, http.get(running.url + "/metrics") as response:
            metrics = (await response.read()).decode()
        assert sum(f'gpusched_policy_rehearsal_seconds_count{{chose="{c}"}} 1.0' in metrics
                   for c in ("terms", "fgd")) == 1
    finally:
        await running.close()


async def test_a_failing_rehearsal_is_logged_and_leaves_the_board_as_it_was(caplog):
    board = Rehearsals()

    def broken() -> Verdict:
        raise RuntimeError("boom")

    board.ask("m", broken)
    with caplog.at_level(logging.ERROR):
        assert await rehearser.play_wanted(board) == 0.0
    assert board.settled == 0 and "a policy rehearsal failed" in caplog.text
    assert await rehearser.play_wanted(board) == 0.0  # nothing wanted any more


@pytest.mark.parametrize("virtual_clock", [False, True])
def test_serve_rehearses_off_path_only_for_a_cluster(virtual_clock):
    settings = settings_from(SimpleNamespace(policy="fgd-plus", seed=0, virtual_clock=virtual_clock))
    assert settings.rehearse_off_path is not virtual_clock
