"""Who measured what, where: the header every results file starts with."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path


def describe() -> str:
    cpu = _field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    total_kib = _field("/proc/meminfo", "MemTotal")
    memory = f", {int(total_kib.split()[0]) // (1024 * 1024)} GiB RAM" if total_kib else ""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return (f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n"
            f"- Machine: {cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}\n"
            f"- Python {platform.python_version()}, commit {commit or 'unknown'}\n")


HAND_WRITTEN = "<!-- hand-written below: kept when this file is regenerated -->"


def write_results(path: Path, generated: str, first_hand_written: str = "\n") -> None:
    """Write a results file: the generated part, then whatever a person wrote below the marker the
    last time (notes, profiles, why a figure misses), which a rerun must not erase."""
    old = path.read_text() if path.is_file() else ""
    hand = old.split(HAND_WRITTEN, 1)[1] if HAND_WRITTEN in old else first_hand_written
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generated.rstrip("\n") + "\n\n" + HAND_WRITTEN + hand)


def _field(path: str, name: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")
