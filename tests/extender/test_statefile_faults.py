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
from scheduler.extender.server import cluster_service
from scheduler.extender.statefile import StateJournal
from scheduler.extender.wire import BindingArgs, ExtenderArgs
from tests.builders import pod
from tests.extender.conftest import EXAMPLES

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
    """os.write / os.fdatasync for one file descriptor: the first `room` bytes fit, then ENOSPC
    (a write that straddles the limit writes what fits and reports it, as the kernel does)."""

    def __init__(self, monkeypatch, fd: int, room: int) -> None:
        self.fd, self.room = fd, room
        self._write, self._sync = os.write, os.fdatasync
        monkeypatch.setattr(os, "write", self.write)
        monkeypatch.setattr(os, "fdatasync", self.fdatasync)

    def write(self, fd, data):
        if fd != self.fd:
            return self._write(fd, data)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self._write(fd, bytes(data[:self.room]))
        self.room -= written
        return written

    def fdatasync(self, fd):
        return self._sync(fd)


def journal_fd(service) -> int:
    return service.binder.journal.fileno()


@pytest.mark.parametrize("room", [0, 7], ids=["nothing-fits", "half-a-line-fits"])
async def test_a_refused_bind_leaves_no_line_behind(tmp_path, monkeypatch, room):
    path = tmp_path / "books.jsonl"
    service = cluster_service(SPEC, journal=StateJournal(path))
    assert await schedule(service, "kept") == ""
    size = path.stat().st_size
    full = FullDisk(monkeypatch, journal_fd(service), room)
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
    FullDisk(monkeypatch, journal_fd(service), 0)
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


@pytest.mark.skipif(not hasattr(os, "fdatasync") or sys.platform != "linux", reason="RLIMIT_FSIZE semantics of Linux")
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
