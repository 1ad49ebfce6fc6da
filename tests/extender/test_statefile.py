"""--state-file: the books after a restart are the books before it."""

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.clusterfile import load_cluster
from scheduler.core.engine import EngineSettings
from scheduler.core.request import parse_pod
from scheduler.extender import statefile
from scheduler.extender.server import cluster_service
from scheduler.extender.statefile import StateFileError, StateJournal
from scheduler.extender.wire import BindingArgs, ExtenderArgs
from tests.builders import pod
from tests.extender.conftest import EXAMPLES

SPEC = load_cluster(EXAMPLES / "mixed.yaml")
NAMES = [n.name for n in SPEC.nodes]


def shapes():
    return st.sampled_from([
        pod("w").gpus(1), pod("w").gpus(2), pod("w").gpus(8), pod("w").share(250, memory_mib=2048),
        pod("w").share(500).mps(), pod("w").share(700).models("A10*"), pod("w").cpu("4"),
    ])


async def drive(service, steps):
    """Arrive (filter, prioritize, bind the best) or release, as the simulator would over HTTP."""
    bound = []
    for i, (kind, value) in enumerate(steps):
        if kind == "release" and bound:
            await service.release(bound.pop(value % len(bound)))
            continue
        if kind == "release":
            continue
        built = value.build()
        built["metadata"]["name"] = f"w{i}"
        built["metadata"]["uid"] = f"uid-{i}"
        args = ExtenderArgs(built, NAMES, None)
        service.filter(args)
        scores = {n: s for n, s in service.engine.scores(parse_pod(built), NAMES)
                  if s is not None}
        if scores:
            node = max(sorted(scores), key=scores.get)
            await service.bind(BindingArgs(f"w{i}", "ml", f"uid-{i}", node))
            bound.append(f"uid-{i}")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(st.tuples(st.just("arrive"), shapes()), st.tuples(st.just("release"), st.integers(0, 50))),
                      max_size=30),
       policy=st.sampled_from(["binpack", "spread", "fgd"]))
def test_restart_from_the_state_file_gives_identical_state(tmp_path_factory, steps, policy):
    path = tmp_path_factory.mktemp("state") / "books.jsonl"
    settings_ = EngineSettings(policy=policy)
    service = cluster_service(SPEC, settings=settings_, journal=StateJournal(path))
    asyncio.run(drive(service, steps))
    before = service.state()
    service.binder.journal.close()
    restarted = cluster_service(SPEC, settings=settings_, journal=StateJournal(path))
    assert restarted.state() == before
    restarted.binder.journal.close()
    # and once more, from the compacted journal
    assert cluster_service(SPEC, settings=settings_, journal=StateJournal(path)).state() == before


def test_a_torn_last_line_is_dropped(tmp_path):
    path = tmp_path / "books.jsonl"
    service = cluster_service(SPEC, journal=StateJournal(path))
    asyncio.run(drive(service, [("arrive", pod("w").gpus(1))]))
    before = service.state()
    service.binder.journal.close()
    with open(path, "ab") as f:
        f.write(b'{"op": "bind", "allocation": {"uid": "half')
    assert cluster_service(SPEC, journal=StateJournal(path)).state() == before


def test_a_corrupt_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "books.jsonl"
    path.write_bytes(b'{"op": "release", "uid": "a"}\nthis is not json\n{"op": "release", "uid": "b"}\n')
    with pytest.raises(StateFileError, match=r"books.jsonl:2: not a state record"):
        StateJournal(path).load()


def test_a_second_journal_on_the_same_file_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "books.jsonl"
    first = cluster_service(SPEC, journal=StateJournal(path))
    with pytest.raises(StateFileError, match=rf"state file {path} is in use by another gpusched \(pid \d+\)"):
        StateJournal(path).load()
    first.binder.journal.close()
    cluster_service(SPEC, journal=StateJournal(path)).binder.journal.close()


def test_the_journal_is_compacted_when_it_grows_past_a_multiple_of_its_live_size(tmp_path, monkeypatch):
    monkeypatch.setattr(statefile, "COMPACT_MIN_BYTES", 8 << 10)
    path = tmp_path / "books.jsonl"
    service = cluster_service(SPEC, journal=StateJournal(path))
    largest = 0
    for round_ in range(150):  # a pod arrives and leaves, for ever: the live books stay the same
        asyncio.run(drive(service, [("arrive", pod("w").gpus(1)), ("release", 0)]))
        assert len(service.engine.allocations) == len(SPEC.pods), round_
        largest = max(largest, path.stat().st_size)
    assert largest <= (8 << 10) + 2048  # one compaction threshold plus the lines of one verb
    before = service.state()
    service.binder.journal.close()
    assert cluster_service(SPEC, journal=StateJournal(path)).state() == before
