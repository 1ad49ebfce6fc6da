"""A state file with every kind of line a server writes: bind, release, and gate records of every
kind (pod, forget, size, problem, reserve, rekey, close, broken), from a real run plus the few
kinds a short run does not reach, built with the same record functions. For the loader's tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from scheduler.clusterfile import ClusterSpec
from scheduler.configfile import GatesConfig
from scheduler.core import gate_records
from scheduler.core.gangs import GangKey
from scheduler.extender.server import cluster_service
from scheduler.extender.statefile import StateJournal
from tests.gangs_quotas.builders import gang_of, nodes, teams, worker
from tests.gangs_quotas.conftest import FakeClock, InProcess

CLUSTER = ClusterSpec(nodes(4, gpus=8), [])
GATES = GatesConfig(teams(vision=(8, 24), nlp=(16, None)))
NAMES = [n.name for n in CLUSTER.nodes]
CLOCK_START = 1_000.0


def service_over(path: Path, clock: FakeClock | None = None):
    return cluster_service(CLUSTER, gates=GATES, clock=clock or FakeClock(CLOCK_START), journal=StateJournal(path))


async def _run(path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    service = service_over(path, clock)
    driver = InProcess(service, NAMES, clock)
    plain = worker("plain", gpus=1, namespace="vision").team("vision").build()
    await driver.cycle(plain)
    await driver.cycle(worker("gone", gpus=2, namespace="nlp").team("nlp").build())
    await driver.release("uid-nlp-gone")
    held = gang_of("held", 2, namespace="nlp", team="nlp", timeout_s=30)
    await driver.cycle(held[0])
    await driver.cycle(held[1])  # reserved; held-1 binds, held-0 waits
    await driver.cycle(gang_of("huge", 2, gpus=64, namespace="ml")[0])  # a gang that never fits
    await driver.cycle(gang_of("huge", 2, gpus=64, namespace="ml")[1])
    clock.advance(31)
    service.expire()  # held's reservation expires with one member bound: broken
    service.binder.journal.close()


def corpus(path: Path) -> list[bytes]:
    """Write the corpus to `path` and return its lines (without their newlines)."""
    asyncio.run(_run(path))
    extra = [
        {"kind": "rekey", "gang": ["nlp", "held"], "old": "uid-nlp-held-0", "new": "uid-nlp-held-0b"},
        gate_records.size_record(GangKey("ml", "huge"), 2),
        {"kind": "broken", "gang": ["nlp", "held"], "reason": "reservation expired"},
        {"kind": "forget", "uid": "uid-ml-huge-1"},
    ]
    with open(path, "ab") as f:
        for record in extra:
            f.write(json.dumps({"op": "gate", "record": record}).encode() + b"\n")
    return path.read_bytes().splitlines()


def kinds(lines: list[bytes]) -> set[str]:
    out = set()
    for line in lines:
        entry = json.loads(line)
        out.add(entry["record"]["kind"] if entry["op"] == "gate" else entry["op"])
    return out
