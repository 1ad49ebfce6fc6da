"""One state file, one server: a second `gpusched serve --state-file F` never touches F while the
first one runs (issue 13, item 7). Real processes, as an operator would start them."""

from __future__ import annotations

import signal

from tests.builders import pod
from tests.cli.test_cli import MIXED, gpusched, http, one_line_error, start_serve, state_after_restart

NODES = ["a100-0", "a100-1", "h100-0", "t4-0", "t4-1", "a10-0", "a10-1", "cpu-0"]


def schedule(url: str, name: str) -> str:
    built = pod(name, uid=f"uid-{name}").gpus(1).build()
    answer = http("POST", url + "/filter", {"Pod": built, "Nodes": None, "NodeNames": NODES})
    return http("POST", url + "/bind", {"PodName": name, "PodNamespace": "ml", "PodUID": f"uid-{name}",
                                        "Node": answer["NodeNames"][0]})["Error"]


def test_a_second_server_on_the_same_state_file_exits_2_and_leaves_the_file_alone(tmp_path):
    state_file = tmp_path / "books.jsonl"
    first, url = start_serve("--cluster", str(MIXED), "--state-file", str(state_file))
    try:
        assert schedule(url, "before") == ""
        inode, content = state_file.stat().st_ino, state_file.read_bytes()
        port = url.rsplit(":", 1)[1]

        same_port = gpusched("serve", "--cluster", str(MIXED), "--state-file", str(state_file), "--port", port)
        one_line_error(same_port, port)
        other_port = gpusched("serve", "--cluster", str(MIXED), "--state-file", str(state_file), "--port", "0",
                               timeout=20)
        one_line_error(other_port, f"state file {state_file} is in use by another gpusched (pid {first.pid})")
        assert (state_file.stat().st_ino, state_file.read_bytes()) == (inode, content)  # not rewritten

        assert schedule(url, "after") == ""  # the first server still writes to the file a restart reads
        before = http("GET", url + "/state")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert state_after_restart(state_file) == before
