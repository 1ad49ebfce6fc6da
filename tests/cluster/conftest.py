"""The real control plane, once per test module, with gpusched installed from deploy/ and one replica.

Skips, saying why, where `../shared/k8s` is absent (a user's machine): CI has it. Each test starts
from an empty cluster (`Cluster.reset`: no test pods, no nodes, empty books) and builds its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler.extender.tls import issue_webhook_certificate
from tests.cluster.cluster import TEST_NAMESPACES, Cluster
from tests.cluster.controlplane import ControlPlane, find_launcher
from tests.cluster.install import install, render
from tests.cluster.replica import Replicas


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def replicas(plane, tmp_path_factory) -> Iterator[Replicas]:
    certificate = issue_webhook_certificate(service="gpusched", namespace="gpu-system", extra_names=("127.0.0.1",))
    rendered = render(plane)
    replicas = Replicas(plane, rendered, certificate, tmp_path_factory.mktemp("gpusched"))
    # The webhook's URL is set to the first replica's port once it runs (`serve_webhook_from`).
    install(plane, rendered, webhook_port=1, ca_pem=certificate.ca_pem)
    for namespace in TEST_NAMESPACES:
        plane.kubectl("create", "namespace", namespace, check=False)
    try:
        yield replicas
    finally:
        for name in list(replicas.running):
            replicas.stop(name)


@pytest.fixture(scope="module")
def live(plane, replicas) -> Cluster:
    """One replica running (kube-scheduler + gpusched), as `kubectl apply -k deploy/...` leaves it."""
    replica = replicas.start("replica-a")
    replicas.serve_webhook_from(replica)
    return Cluster(plane, [replica.extender])


@pytest.fixture
def cluster(live) -> Iterator[Cluster]:
    live.reset()
    yield live


@pytest.fixture
def live_scheduler_pid(plane, live) -> int:
    """The running kube-scheduler's process (a test may pause it with SIGSTOP, briefly: under 10 s,
    or it loses its leader lease and exits)."""
    return plane.scheduler_pid("replica-a")
