"""A gpu-scheduler replica as the Deployment runs it: a stock kube-scheduler beside a gpusched sidecar.

`Replicas.start(name)` starts both, each as its own process, the sidecar with the Deployment's
arguments and both as the `gpu-scheduler` ServiceAccount. kube-scheduler's own leader election
(Lease `gpu-scheduler`) picks the replica that schedules, the sidecars elect the reclaimer (Lease
`gpu-extender`), exactly as in a cluster. The webhook URL stands in for the Service: it points at
one replica's webhook port, and `serve_webhook_from` moves it as the Service's endpoints would.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from scheduler.extender.tls import IssuedCertificate
from tests.cluster.controlplane import ControlPlane
from tests.cluster.extender import ExtenderProcess, free_port
from tests.cluster.install import NAMESPACE, SCHEDULER_NAME, Rendered, scheduler_config, sidecar_command


@dataclass
class Replica:
    name: str
    extender: ExtenderProcess
    scheduler_log: Path


class Replicas:
    def __init__(self, plane: ControlPlane, rendered: Rendered, certificate: IssuedCertificate, home: Path, *,
                 config: str | None = None) -> None:
        """`config`: the sidecar's --config file (default: the one deploy/ ships)."""
        self.plane = plane
        self.rendered = rendered
        self.certificate = certificate
        self.home = home
        self._kubeconfig: Path | None = None
        (home / "tls.crt").write_bytes(certificate.cert_pem)
        (home / "tls.key").write_bytes(certificate.key_pem)
        self.config = home / "gpusched-config.yaml"
        self.config.write_text(config if config is not None else rendered.gpusched_config)
        self.running: dict[str, Replica] = {}

    @property
    def kubeconfig(self) -> Path:
        """The ServiceAccount's token, asked for once deploy/ has created the ServiceAccount."""
        if self._kubeconfig is None:
            self._kubeconfig = self.plane.service_account_kubeconfig(NAMESPACE, SCHEDULER_NAME,
                                                                     self.home / "gpu-scheduler.kubeconfig")
        return self._kubeconfig

    def extender(self, name: str, *, extra: tuple[str, ...] = ()) -> ExtenderProcess:
        port, webhook_port = free_port(), free_port()
        args = sidecar_command(self.rendered, kubeconfig=self.kubeconfig, identity=name, port=port,
                               webhook_port=webhook_port, tls_cert=self.home / "tls.crt",
                               tls_key=self.home / "tls.key", config=self.config, extra=extra)
        return ExtenderProcess(args=args, port=port, webhook_port=webhook_port, ca_pem=self.certificate.ca_pem,
                               log=self.home / f"{name}.gpusched.log")

    def start(self, name: str, *, extra: tuple[str, ...] = (), scheduler_args: str = "") -> Replica:
        extender = self.extender(name, extra=extra).start()
        config = scheduler_config(self.rendered, extender_port=extender.port,
                                  path=self.home / f"{name}.kube-scheduler.yaml")
        log = self.plane.start_scheduler(self._place(name), config, self.kubeconfig, extra_args=scheduler_args)
        replica = Replica(name, extender, log)
        self.running[name] = replica
        return replica

    def stop(self, name: str) -> None:
        replica = self.running.pop(name)
        self.plane.stop_scheduler(self._place(name))
        replica.extender.kill()

    def scheduler_pid(self, name: str) -> int:
        return self.plane.scheduler_pid(self._place(name))

    def _place(self, name: str) -> str:
        """Each module's replicas keep their own kube-scheduler logs."""
        return f"{self.home.name}-{name}"

    def serve_webhook_from(self, replica: Replica) -> None:
        url = f"https://127.0.0.1:{replica.extender.webhook_port}/mutate"
        ca = base64.b64encode(self.certificate.ca_pem).decode()
        self.plane.kubectl("patch", "mutatingwebhookconfiguration", "gpusched", "--type=json", "-p",
                           f'[{{"op":"replace","path":"/webhooks/0/clientConfig","value":{{"url":"{url}","caBundle":"{ca}"}}}}]')
