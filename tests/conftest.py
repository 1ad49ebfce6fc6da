"""Shared pytest configuration and fixtures. Area-specific fixtures live in tests/<area>/conftest.py.

`kube_api`: the fake Kubernetes API server (tests/fakes/kubeapi), started per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.fakes.kubeapi import KubeApiFake

# CI has 2 cores and a 10-minute budget for the whole suite: property tests run a bounded number
# of examples there; `HYPOTHESIS_PROFILE=thorough` runs many more locally.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def kube_api() -> Iterator[KubeApiFake]:
    """A running fake API server (`.url`, `.configuration()`, `.kubeconfig(path)`, controls), stopped after."""
    with KubeApiFake() as fake:
        yield fake
