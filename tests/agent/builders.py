"""Builders for fake NVML descriptions: tests state only what they are about."""

from __future__ import annotations

from typing import Any

from scheduler.agent.fake_nvml import FakeNvml


def uuid_of(index: int, prefix: str = "GPU") -> str:
    return f"{prefix}-{index:08d}-0000-4000-8000-{index:012d}"


def bus_of(index: int) -> str:
    return f"00000000:{0x10 + index:02X}:00.0"


def gpu(index: int, **fields: Any) -> dict[str, Any]:
    """One GPU as the fake's YAML would describe it; an A100-SXM4-80GB unless told otherwise."""
    spec: dict[str, Any] = {"index": index, "uuid": uuid_of(index), "name": "NVIDIA A100-SXM4-80GB",
                            "memoryMiB": 81920, "pciBusId": bus_of(index)}
    spec.update(fields)
    return spec


def node(*gpus: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"driverVersion": "550.54.15", "cudaVersion": "12.4", "gpus": list(gpus), **top}


def fake(*gpus: dict[str, Any], clock=None, **top: Any) -> FakeNvml:
    """An opened fake. With `clock` (a FakeClock), waiting for events advances it."""
    source = FakeNvml(node(*gpus, **top), where="test", sleep=clock.sleep if clock else (lambda _s: None))
    source.open()
    return source


class FakeClock:
    """Monotonic seconds and wall time that move only when told (or when the agent sleeps)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
