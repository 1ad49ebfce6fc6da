"""Who measured what, where: the header every results file starts with."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess


def describe() -> str:
    cpu = _field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    total_kib = _field("/proc/meminfo", "MemTotal")
    memory = f", {int(total_kib.split()[0]) // (1024 * 1024)} GiB RAM" if total_kib else ""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return (f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n"
            f"- Machine: {cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}\n"
            f"- Python {platform.python_version()}, commit {commit or 'unknown'}\n")


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
