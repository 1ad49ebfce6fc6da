"""A state file is validated line by line on load (issue 13, items 8 and 12): a line that is not
a record a server writes is one line of error naming the file, the line and the field (exit 2 from
the CLI), never a traceback and never a silent load of an impossible value."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.extender.statefile import StateFileError
from tests.cli.test_cli import MIXED, ROOT, one_line_error
from tests.extender.state_corpus import NAMES, corpus, kinds, service_over
from tests.gangs_quotas.builders import worker
from tests.gangs_quotas.conftest import InProcess


@cache
def valid_lines() -> tuple[bytes, ...]:
    lines = corpus(Path(tempfile.mkdtemp(prefix="state-corpus-")) / "state.jsonl")
    assert kinds(lines) == {"bind", "release", "pod", "forget", "size", "problem", "reserve", "rekey", "close",
                            "broken"}
    return tuple(lines)


def paths(value, prefix=()):
    """Every place in a JSON value: the value itself, then each key or index, depth first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths(item, (*prefix, i))


def replace_at(value, path, new):
    if not path:
        return new
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def delete_at(value, path):
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


HOSTILE = st.sampled_from([-5000, -1, 0, 1, 1000, 1001, 2**31, 2**63, 2**70, -(2**70), 1e308, -1e308, 0.5,
                           "400", "", "x" * 300, "\u0000", None, True, False, [], [1, "a"], [[]], {}, {"a": 1},
                           {"kind": "pod"}])


@st.composite
def mutated_files(draw):
    """(file bytes, the number of the line that was changed, whether it is the last line)."""
    lines = list(valid_lines())
    number = draw(st.integers(1, len(lines)))
    line = lines[number - 1]
    how = draw(st.sampled_from(["value", "value", "value", "delete", "extra-key", "bytes", "truncate"]))
    if how == "bytes":
        new = draw(st.binary(min_size=1, max_size=80).filter(lambda b: b"\n" not in b and b"\r" not in b))
    elif how == "truncate":
        new = line[:draw(st.integers(0, len(line) - 1))]
    else:
        record = json.loads(line)
        places = list(paths(record))
        if how == "value":
            record = replace_at(record, draw(st.sampled_from(places)), draw(HOSTILE))
        elif how == "delete":
            deletable = [p for p in places if p]
            record = delete_at(record, draw(st.sampled_from(deletable)))
        else:
            dicts = [p for p in places if isinstance(_at(record, p), dict)]
            where = draw(st.sampled_from(dicts))
            record = replace_at(record, where, {**_at(record, where), "surprise": draw(HOSTILE)})
        new = json.dumps(record).encode()
    lines[number - 1] = new
    return b"\n".join(lines) + b"\n", number


def _at(value, path):
    for step in path:
        value = value[step]
    return value


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy dividing by a zero a record smuggled in counts too
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(case=mutated_files())
def test_any_broken_line_loads_cleanly_or_is_one_line_naming_it(tmp_path_factory, case):
    content, number = case
    path = tmp_path_factory.mktemp("state") / "state.jsonl"
    path.write_bytes(content)
    try:
        service = service_over(path)
    except StateFileError as e:
        message = str(e)
        assert "\n" not in message
        assert message.startswith(f"{path}:{number}: "), message
        return
    try:  # loaded: the extender works as ever
        service.state()
        service.expire()
        driver = InProcess(service, NAMES, None)
        asyncio.run(driver.cycle(worker("after", gpus=1).build()))
    finally:
        service.binder.journal.close()


def valid_line(kind: str) -> dict:
    for line in valid_lines():
        entry = json.loads(line)
        if (entry["record"]["kind"] if entry["op"] == "gate" else entry["op"]) == kind:
            return entry
    raise LookupError(kind)


def with_line(entry: dict) -> bytes:
    """The valid corpus up to and including the first bind, then `entry` as line 2."""
    return valid_lines()[0] + b"\n" + json.dumps(entry).encode() + b"\n"


CASES = [
    (("allocation", "milli"), -5000, "allocation.milli", "-5000"),
    (("allocation", "milli"), "400", "allocation.milli", "'400'"),
    (("allocation", "milli"), 1500, "allocation.milli", "1500"),
    (("allocation", "cpu_milli"), -1, "allocation.cpu_milli", "-1"),
    (("allocation", "gpu_uuids"), "GPU-n0-0", "allocation.gpu_uuids", "list"),
    (("op",), "grant", "op", "'grant'"),
]


@pytest.mark.parametrize(("path", "value", "field", "shown"), CASES,
                         ids=["negative milli", "milli a string", "milli over a GPU", "negative CPU",
                              "uuids not a list", "unknown op"])
def test_a_bad_bind_line_names_its_line_and_field(tmp_path, path, value, field, shown):
    entry = replace_at(valid_line("bind"), path, value)
    state = tmp_path / "state.jsonl"
    state.write_bytes(with_line(entry))
    with pytest.raises(StateFileError) as caught:
        service_over(state)
    message = str(caught.value)
    assert message.startswith(f"{state}:2: ") and field in message and shown in message


@pytest.mark.parametrize(("kind", "path", "value", "field"), [
    ("pod", ("record", "kind"), "teleport", "record.kind"),
    ("pod", ("record", "pod", "gpuMilli"), -3, "record.pod.gpuMilli"),
    ("reserve", ("record", "deadline"), "soon", "record.deadline"),
    ("reserve", ("record", "members", 0, "slots"), [0, -1], "record.members[0].slots[1]"),
    ("close", ("record", "outcome"), "fine", "record.outcome"),
    ("size", ("record", "size"), 0, "record.size"),
], ids=["unknown kind", "negative share", "deadline a string", "negative slot", "unknown outcome", "size 0"])
def test_a_bad_gate_line_names_its_line_and_field(tmp_path, kind, path, value, field):
    state = tmp_path / "state.jsonl"
    state.write_bytes(with_line(replace_at(valid_line(kind), path, value)))
    with pytest.raises(StateFileError) as caught:
        service_over(state)
    assert str(caught.value).startswith(f"{state}:2: ") and field in str(caught.value)


@pytest.mark.parametrize(("line", "fragments"), [
    (b'{"op": "bind", "allocation": {"uid": "u", "namespace": "ml", "name": "p", "node": "a100-0", "milli": -5000}}',
     [":1: ", "allocation.milli", "-5000"]),
    (b'{"op": "bind", "allocation": {"uid": "u", "namespace": "ml", "name": "p", "node": "a100-0", "milli": "400"}}',
     [":1: ", "allocation.milli", "'400'"]),
    (b'{"op": "gate", "record": {"kind": "wormhole"}}', [":1: ", "record.kind", "'wormhole'"]),
], ids=["negative milli", "milli a string", "unknown record kind"])
def test_serve_reports_a_corrupt_state_file_in_one_line_and_exits_2(tmp_path, line, fragments):
    state = tmp_path / "state.jsonl"
    state.write_bytes(line + b"\n" + b'{"op": "release", "uid": "u"}\n')
    result = subprocess.run([sys.executable, "-m", "scheduler.cli", "serve", "--cluster", str(MIXED),
                             "--state-file", str(state), "--port", "0"], capture_output=True, text=True,
                            cwd=ROOT, timeout=30)
    one_line_error(result, str(state), *fragments)


def test_only_a_cut_short_last_line_is_torn(tmp_path):
    """A crash leaves a prefix of a line (never JSON); an edited last line without its newline is
    still checked."""
    state = tmp_path / "state.jsonl"
    bind = valid_lines()[0]
    state.write_bytes(bind + b"\n" + bind[: len(bind) // 2])
    service_over(state).binder.journal.close()  # dropped with a warning, then compacted away
    assert state.read_bytes() == bind + b"\n"
    state.write_bytes(bind + b"\n" + json.dumps(replace_at(json.loads(bind), ("allocation", "milli"), -5000)).encode())
    with pytest.raises(StateFileError, match=r":2: not a state record: allocation\.milli"):
        service_over(state)
