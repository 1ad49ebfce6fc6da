"""One gpusched replica as a real process (`python -m scheduler.cli serve ...`), as the sidecar runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.controlplane import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ExtenderProcess:
    """`gpusched serve` with fixed ports, so a restarted replica is where kube-scheduler calls."""

    args: list[str]
    port: int
    webhook_port: int
    ca_pem: bytes
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, *, ready_timeout: float = 60) -> ExtenderProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("a") as log:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')}\n")
        self.process = subprocess.Popen([sys.executable, "-m", "scheduler.cli", *self.args], cwd=ROOT, env=env,
                                        stdout=self.log.open("a"), stderr=subprocess.STDOUT)
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise AssertionError(f"gpusched exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gpusched not ready after {timeout}s:\n{self.tail()}")
            time.sleep(0.1)

    def ready(self) -> bool:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.webhook_port}/readyz", context=context,
                                        timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as answer:
            return json.load(answer)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as answer:
            return answer.read().decode()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
