"""--state-file when the disk refuses: a refused write leaves nothing behind, and nothing is
acknowledged that the journal did not record (issue 13, item 6)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scheduler.clusterfile import load_cluster
from scheduler.extender import journal_keeper
from scheduler.extender.server import cluster_service
from scheduler.extender.statefile import StateJournal
from scheduler.extender.wire import BindingArgs, ExtenderArgs
from tests.builders import pod
from tests.extender.conftest import EXAMPLES
from tests.extender.state_corpus import CLOCK_START, service_over
from tests.extender.state_corpus import NAMES as CORPUS_NAMES
from tests.gangs_quotas.builders import gang_of, worker
from tests.gangs_quotas.conftest import FakeClock, InProcess

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/fd and RLIMIT_FSIZE as Linux has them")
ROOT = Path(__file__).resolve().parents[2]
SPEC = load_cluster(EXAMPLES / "mixed.yaml")
NAMES = [n.name for n in SPEC.nodes]
PRESET = {a.uid for a in SPEC.pods}
"""The cluster file's running pods: in the books before and after every restart."""


async def schedule(service, name: str) -> str:
    """Filter then bind pod `name` (one whole GPU) to the first node that passes; the bind's Error."""
    built = pod(name, uid=uid_of(name)).gpus(1).build()
    passed = json.loads(service.filter(ExtenderArgs(built, NAMES, None)))["NodeNames"]
    meta = built["metadata"]
    answer = await service.bind(BindingArgs(meta["name"], meta["namespace"], meta["uid"], passed[0]))
    return json.loads(answer)["Error"]


def uid_of(name: str) -> str:
    return f"uid-{name}"


class FullDisk:
    """os.write for files under one directory, as on a full disk there: the first `room` bytes fit,
    then ENOSPC (a write that straddles the limit writes what fits and reports it, as the kernel
    does). Other files (the test's own, the interpreter's) are not affected."""

    def __init__(self, monkeypatch, directory: Path, room: int) -> None:
        self.directory, self.room = str(directory), room
        self._write = os.write
        monkeypatch.setattr(os, "write", self.write)

    def write(self, fd, data):
        if not os.readlink(f"/proc/self/fd/{fd}").startswith(self.directory):
            return self._write(fd, data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self._write(fd, bytes(data[:self.room]))
        self.room -= written
        return written


@pytest.mark.parametrize("room", [0, 7], ids=["nothing-fits", "half-a-line-fits"])
async def test_a_refused_bind_leaves_no_line_behind(tmp_path, monkeypatch, room):
    path = tmp_path / "books.jsonl"
    service = cluster_service(SPEC, journal=StateJournal(path))
    assert await schedule(service, "kept") == ""
    size = path.stat().st_size
    full = FullDisk(monkeypatch, tmp_path, room)
    assert "No space left on device" in await schedule(service, "refused")
    assert path.stat().st_size == size  # not a byte of the refused line, not even part of it
    full.room = 1 << 20  # space is freed: the next bind must not carry the refused one along
    assert await schedule(service, "later") == ""
    service.binder.journal.close()
    restarted = cluster_service(SPEC, journal=StateJournal(path))
    assert set(restarted.engine.allocations) - PRESET == {uid_of("kept"), uid_of("later")}
    restarted.binder.journal.close()


async def test_a_release_the_journal_cannot_record_is_refused_and_the_books_keep_the_pod(tmp_path, monkeypatch):
    path = tmp_path / "books.jsonl"
    service = cluster_service(SPEC, journal=StateJournal(path))
    assert await schedule(service, "held") == ""
    FullDisk(monkeypatch, tmp_path, 0)
    with pytest.raises(Exception, match="No space left on device"):
        await service.release(uid_of("held"))
    assert uid_of("held") in service.engine.allocations
    monkeypatch.undo()
    service.binder.journal.close()
    assert uid_of("held") in cluster_service(SPEC, journal=StateJournal(path)).engine.allocations


_FSIZE_SCRIPT = textwrap.dedent("""
    import asyncio, json, os, resource, signal, sys
    sys.path.insert(0, os.getcwd())
    from tests.extender.test_statefile_faults import SPEC, schedule, uid_of
    from scheduler.extender.server import cluster_service
    from scheduler.extender.statefile import StateJournal

    async def main(path):
        service = cluster_service(SPEC, journal=StateJournal(path))
        out = {"first": await schedule(service, "first")}
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 20, hard))  # no line fits (a release line is ~40 bytes)
        out["refused"] = await schedule(service, "refused")
        try:
            await service.release(uid_of("first"))
            out["release"] = ""
        except Exception as e:
            out["release"] = str(e)
        out["still_held"] = uid_of("first") in service.engine.allocations
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
        out["later"] = await schedule(service, "later")
        service.binder.journal.close()
        print(json.dumps(out))

    asyncio.run(main(sys.argv[1]))
""")


def test_a_real_file_size_limit_refuses_binds_and_releases_and_leaves_no_trace(tmp_path):
    path = tmp_path / "books.jsonl"
    result = subprocess.run([sys.executable, "-c", _FSIZE_SCRIPT, str(path)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["first"] == "" and out["later"] == ""
    assert "File too large" in out["refused"]
    assert "File too large" in out["release"] and out["still_held"]
    restarted = cluster_service(SPEC, journal=StateJournal(path))
    assert set(restarted.engine.allocations) - PRESET == {uid_of("first"), uid_of("later")}
    restarted.binder.journal.close()


async def test_gang_records_the_disk_refused_come_back_with_the_next_snapshot(tmp_path, monkeypatch):
    """Nobody can refuse a gang record (a filter has no Error to answer), so a refused one marks the
    journal stale, and the next verb after the disk has room writes a whole snapshot."""
    monkeypatch.setattr(journal_keeper, "RETRY_AFTER_S", 0.0)  # try the snapshot again at once
    path = tmp_path / "state.jsonl"
    clock = FakeClock(CLOCK_START)
    service = service_over(path, clock)
    driver = InProcess(service, CORPUS_NAMES, clock)
    full = FullDisk(monkeypatch, tmp_path, 0)
    await driver.cycle(gang_of("late", 3, namespace="nlp", team="nlp")[0])  # a pending member: a gate record
    assert service.binder.journal.stale
    full.room = 1 << 20
    await driver.cycle(worker("next", gpus=1, namespace="vision").team("vision").build())
    assert not service.binder.journal.stale
    before = service.state()
    monkeypatch.undo()
    service.binder.journal.close()
    restarted = service_over(path, clock)
    assert restarted.state() == before
    assert any(g["gang"] == "nlp/late" for g in before["gangs"])
    restarted.binder.journal.close()
