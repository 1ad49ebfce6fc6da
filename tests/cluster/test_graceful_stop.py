"""A sidecar stopped as the kubelet stops it (SIGTERM) hands its Lease over at once: the standby
takes `gpu-extender` within its retry period instead of waiting the 15 s lease out."""

from __future__ import annotations

import signal
import time

import pytest

from tests import processes
from tests.cluster.controlplane import wait_until
from tests.cluster.install import NAMESPACE

pytestmark = pytest.mark.xdist_group("control-plane")

LEASE_DURATION_S = 15.0  # the sidecar's default --lease-duration; it retries every 2 s


def _holder(plane) -> str:
    out = plane.kubectl("-n", NAMESPACE, "get", "lease", "gpu-extender", "-o", "jsonpath={.spec.holderIdentity}",
                        check=False)
    return out.stdout.strip()


def test_a_sidecar_stopped_with_sigterm_hands_its_lease_to_the_standby_at_once(plane, replicas):
    first = replicas.extender("stop-a").start()
    try:
        wait_until("stop-a holding the gpu-extender Lease", lambda: _holder(plane) == "stop-a", timeout=30)
        standby = replicas.extender("stop-b").start()
        try:
            stopped = time.monotonic()
            assert processes.stop(first.process, signal.SIGTERM, grace_s=30) == 0, first.tail()  # in order, not ended by it
            wait_until("stop-b holding the Lease", lambda: _holder(plane) == "stop-b", timeout=LEASE_DURATION_S * 2,
                       interval=0.1)
            handed_over = time.monotonic() - stopped
            print(f"the standby held the Lease {handed_over:.1f} s after SIGTERM")
            assert handed_over < LEASE_DURATION_S / 2, f"waited the lease out ({handed_over:.1f} s)"
        finally:
            standby.kill()
    finally:
        first.kill()
