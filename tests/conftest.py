"""Shared fixtures. `kube_api`: the fake Kubernetes API server (tests/fakes/kubeapi), started per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.kubeapi import KubeApiFake


@pytest.fixture
def kube_api() -> Iterator[KubeApiFake]:
    """A running fake API server (`.url`, `.configuration()`, `.kubeconfig(path)`, controls), stopped after."""
    with KubeApiFake() as fake:
        yield fake
