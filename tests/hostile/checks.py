"""What every answer to hostile input must be, and what the books must never show."""

from __future__ import annotations

from typing import Any

import orjson

FORBIDDEN = (b"Traceback", b"internal error", b'File "')


def assert_answered(verb: str, status: int, body: bytes) -> Any:
    """No 500, no traceback, no internal error; a 400 is one line with a reason. Returns the JSON."""
    assert status in (200, 400, 413), f"{verb}: HTTP {status}: {body[:300]!r}"
    for text in FORBIDDEN:
        assert text not in body, f"{verb}: answer contains {text!r}: {body[:300]!r}"
    if status == 413:
        return None
    answer = orjson.loads(body)
    if status == 400:
        reason = answer.get("Error") or answer.get("error")
        assert isinstance(reason, str) and reason and "\n" not in reason, f"{verb}: 400 without a reason: {body[:300]!r}"
    return answer


def refused_filter(status: int, answer: Any) -> bool:
    """A filter that refused the pod itself (bad input), not one that found no room."""
    if status != 200:
        return True
    reasons = {**(answer.get("FailedNodes") or {}), **(answer.get("FailedAndUnresolvableNodes") or {})}
    return bool(reasons) and all(r.startswith("invalid GPU request:") for r in reasons.values())


def assert_books_sane(state: dict[str, Any]) -> None:
    """Nothing negative, nothing over capacity, every number finite."""
    for node in state["nodes"]:
        where = node["name"]
        assert 0 <= node["usedCpuMilli"] <= node["cpuMilli"], f"{where}: CPU {node['usedCpuMilli']}/{node['cpuMilli']}"
        assert 0 <= node["usedMemoryMiB"] <= node["memoryMiB"], f"{where}: memory {node['usedMemoryMiB']}"
        for gpu in node["gpus"]:
            assert 0 <= gpu["usedMilli"] <= 1000 and gpu["usedMemoryMiB"] >= 0, f"{where}: GPU {gpu}"
    for team in state["teams"]["teams"]:
        assert min(team["usedMilli"], team["reservedMilli"], team["borrowedMilli"]) >= 0, f"team {team}"
    for gang in state["gangs"]:
        reservation = gang.get("reservation")
        if reservation is not None:
            assert isinstance(reservation["deadline"], int | float) and reservation["deadline"] < 1e12, gang
