"""Fixtures for the fake API server's own tests."""

from __future__ import annotations

import pytest

from tests.fakes.kube_clients import Clients, clients_for
from tests.fakes.kubeapi import KubeApiFake


@pytest.fixture
def clients(kube_api: KubeApiFake) -> Clients:
    """The official client's typed APIs, pointed at this test's fake."""
    return clients_for(kube_api)
