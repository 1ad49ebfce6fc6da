"""The official `kubernetes` client's typed APIs pointed at a fake, and how tests read what the server sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from tests.fakes.kubeapi import KubeApiFake


@dataclass(frozen=True)
class Clients:
    """The typed APIs of one `kubernetes` ApiClient (one connection pool, as one process would have)."""

    core: client.CoreV1Api
    coordination: client.CoordinationV1Api
    policy: client.PolicyV1Api
    events: client.EventsV1Api
    custom: client.CustomObjectsApi


def clients_for(fake: KubeApiFake) -> Clients:
    api_client = client.ApiClient(fake.configuration())
    return Clients(client.CoreV1Api(api_client), client.CoordinationV1Api(api_client),
                   client.PolicyV1Api(api_client), client.EventsV1Api(api_client),
                   client.CustomObjectsApi(api_client))


def raw(response: Any) -> dict[str, Any]:
    """The JSON of a call made with `_preload_content=False` (what the server really sent)."""
    return json.loads(response.data)


def error_body(exc: client.ApiException) -> dict[str, Any]:
    return json.loads(exc.body)
