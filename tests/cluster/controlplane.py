"""A real etcd + kube-apiserver + kube-scheduler on loopback, from `../shared/k8s/local-control-plane`.

The control plane is the project's test fixture, not part of the project: a user's machine has no
`../shared`, so `find_launcher` answers None there and the suite skips, saying why. No kubelet and
no controller-manager run, so the tests play their parts: they mark nodes Ready, create the pods a
Job controller would, and force-delete the pods an eviction leaves terminating.

Everything is started as the user would run it: kube-scheduler with the KubeSchedulerConfiguration
rendered from `deploy/`, as the `gpu-scheduler` ServiceAccount whose RBAC `deploy/` installs.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client as k8s

from scheduler.kube.client import load_configuration

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT.parent / "shared" / "k8s" / "local-control-plane"


def find_launcher() -> Path | None:
    return LAUNCHER if os.access(LAUNCHER, os.X_OK) else None


@dataclass
class ControlPlane:
    """etcd and kube-apiserver in `home`; kube-schedulers started on demand, one per `home/<name>`."""

    home: Path
    launcher: Path = LAUNCHER

    def start(self) -> None:
        self._run("start", str(self.home), timeout=180)
        self.api_client = k8s.ApiClient(load_configuration(kubeconfig=str(self.kubeconfig)))
        self.core = k8s.CoreV1Api(self.api_client)

    def stop(self) -> None:
        for sub in sorted(self.home.iterdir()) if self.home.exists() else ():
            if (sub / "pids").is_dir() and sub != self.home:
                self._run("stop", str(sub), check=False)
        self._run("stop", str(self.home), check=False)

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def server(self) -> str:
        return (self.home / "server").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.home / "pki" / "ca.crt"

    # ------------------------------------------------------------------ schedulers
    def start_scheduler(self, name: str, config: Path, kubeconfig: Path, *, extra_args: str = "") -> Path:
        """A kube-scheduler of its own (`home/name`), so several replicas can run side by side."""
        place = self.home / name
        for sub in ("logs", "pids"):
            (place / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(self.kubeconfig, place / "kubeconfig")
        env = {**os.environ, "LCP_SCHEDULER_ARGS": f"--v=2 {extra_args}".strip()}
        log = place / "logs" / "kube-scheduler.log"
        for _attempt in range(3):
            self._run("scheduler", str(place), str(config), str(kubeconfig), env=env, timeout=120)
            # The launcher picks a free port and starts kube-scheduler on it; another process may
            # take the port in between ("address already in use"), and a probe can still pass.
            time.sleep(0.5)
            if self._alive(place) and "failed to create listener" not in log.read_text(errors="replace"):
                return log
            self._run("stop", str(place), check=False)
        raise RuntimeError(f"kube-scheduler {name} did not stay up: {log.read_text(errors='replace')[-1500:]}")

    @staticmethod
    def _alive(place: Path) -> bool:
        try:
            os.kill(int((place / "pids" / "kube-scheduler.pid").read_text()), 0)
            return True
        except (OSError, ValueError):
            return False

    def stop_scheduler(self, name: str) -> None:
        self._run("stop", str(self.home / name), check=False)

    def scheduler_pid(self, name: str) -> int:
        return int((self.home / name / "pids" / "kube-scheduler.pid").read_text())

    # ---------------------------------------------------------------- identities
    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig carrying a TokenRequest token of that ServiceAccount: its RBAC, nothing more."""
        token = self.core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 3600 * 6}}).status.token
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "local", "cluster": {"server": self.server, "certificate-authority-data": ca}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "local", "user": name}}]}))
        return path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        kubectl = shutil.which("kubectl", path=str(Path(os.sys.executable).parent)) or "kubectl"
        return subprocess.run([kubectl, "--kubeconfig", str(self.kubeconfig), *args], input=input, text=True,
                              capture_output=True, check=check, timeout=120)

    def _run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
             check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.launcher), *args], capture_output=True, text=True, env=env,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"local-control-plane {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
        return result


def wait_until(what: str, condition, *, timeout: float, interval: float = 0.1):
    """Poll `condition()` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
