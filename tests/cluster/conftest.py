"""The real control plane, once per session, with gpusched installed from deploy/; replicas per module.

Skips, saying why, where `../shared/k8s` is absent (a user's machine): CI has it. Every module of
tests/cluster runs on one xdist worker (`xdist_group`), so one control plane serves them all. A
module gets its own replicas (kube-scheduler + gpusched), started from the shipped manifests with
the module's `GPUSCHED_CONFIG` (the sidecar's --config file) if it sets one, and each test starts
from an empty cluster (`Cluster.reset`: no test pods, no nodes, empty books).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler.extender.tls import issue_webhook_certificate
from tests.cluster.cluster import TEST_NAMESPACES, Cluster
from tests.cluster.controlplane import ROOT, ControlPlane, find_launcher
from tests.cluster.install import NAMESPACE, Rendered, install, render
from tests.cluster.replica import Replicas


@pytest.fixture(scope="session")
def plane(tmp_path_factory) -> Iterator[ControlPlane]:
    launcher = find_launcher()
    if launcher is None:
        pytest.skip("no real control plane: ../shared/k8s/local-control-plane is absent (CI has it)")
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), launcher)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def installed(plane) -> tuple[Rendered, object]:
    """deploy/base applied as rendered; the webhook's URL follows the replica serving it."""
    certificate = issue_webhook_certificate(service="gpusched", namespace=NAMESPACE, extra_names=("127.0.0.1",))
    rendered = render(plane)
    # What the PyTorchJob example needs installed first: the PodGroup and PyTorchJob CRDs.
    plane.kubectl("apply", "-f", str(ROOT / "tests/cluster/crds/podgroup.yaml"))
    left_out = install(plane, rendered, webhook_port=1, ca_pem=certificate.ca_pem)
    if left_out:
        print(f"deploy/base objects this v1.28 control plane cannot serve, not applied: {', '.join(left_out)}")
    for namespace in TEST_NAMESPACES:
        plane.kubectl("create", "namespace", namespace, check=False)
    return rendered, certificate


@pytest.fixture(scope="module")
def replicas(request, plane, installed, tmp_path_factory) -> Iterator[Replicas]:
    rendered, certificate = installed
    config = getattr(request.module, "GPUSCHED_CONFIG", None)
    replicas = Replicas(plane, rendered, certificate, tmp_path_factory.mktemp("gpusched"), config=config)
    try:
        yield replicas
    finally:
        for name in list(replicas.running):
            replicas.stop(name)
        # A killed leader never gives its Leases up: the next module's replicas must not wait them out.
        plane.kubectl("-n", NAMESPACE, "delete", "lease", "gpu-scheduler", "gpu-extender", "--ignore-not-found")


@pytest.fixture(scope="module")
def live(plane, replicas) -> Cluster:
    """One replica running (kube-scheduler + gpusched), as `kubectl apply -k deploy/...` leaves it."""
    replica = replicas.start("replica-a")
    replicas.serve_webhook_from(replica)
    return Cluster(plane, [replica.extender], scheduler_log=replica.scheduler_log)


@pytest.fixture
def cluster(live) -> Iterator[Cluster]:
    live.reset()
    yield live


@pytest.fixture
def live_scheduler_pid(replicas, live) -> int:
    """The running kube-scheduler's process (a test may pause it with SIGSTOP, briefly: under 10 s,
    or it loses its leader lease and exits)."""
    return replicas.scheduler_pid("replica-a")
