"""The fake API server's watches, driven by the official client's `watch.Watch().stream` over real HTTP.

Each watch replays from a resourceVersion and stops after the events the test expects, so no test waits
for a server-side timeout except the one about timeouts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import urllib3
from kubernetes import watch
from kubernetes.client import ApiException

from tests.fakes import kube_objects as k
from tests.fakes.kube_clients import Clients, clients_for
from tests.fakes.kubeapi import KubeApiFake


def events(stream: Iterator[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    """The next `count` events as (type, name), BOOKMARKs included as (BOOKMARK, rv)."""
    seen = []
    for event in itertools.islice(stream, count):
        metadata = event["raw_object"]["metadata"]
        seen.append((event["type"], metadata["resourceVersion"] if event["type"] == "BOOKMARK"
                     else metadata["name"]))
    return seen


def test_a_watch_from_a_list_receives_exactly_the_later_events(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("before"))
    listed = clients.core.list_namespaced_pod("default")
    clients.core.create_namespaced_pod("default", k.pod("a"))
    clients.core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    clients.core.delete_namespaced_pod("before", "default")
    clients.core.create_namespaced_config_map("default", {"metadata": {"name": "other-kind"}})
    clients.core.create_namespaced_pod("default", k.pod("b"))

    stream = watch.Watch().stream(clients.core.list_namespaced_pod, "default",
                                  resource_version=listed.metadata.resource_version, timeout_seconds=5)
    assert events(stream, 4) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "before"), ("ADDED", "b")]


def test_deleted_events_carry_the_deletion_resource_version(kube_api: KubeApiFake, clients: Clients) -> None:
    created = clients.core.create_namespaced_pod("default", k.pod("a"))
    clients.core.delete_namespaced_pod("a", "default")
    w = watch.Watch()
    event = next(w.stream(clients.core.list_namespaced_pod, "default", timeout_seconds=5,
                          resource_version=created.metadata.resource_version))
    assert event["type"] == "DELETED"
    assert event["raw_object"]["metadata"]["resourceVersion"] == kube_api.resource_version == w.resource_version


def test_a_watch_without_resource_version_starts_with_the_current_objects(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("a"))
    clients.core.create_namespaced_pod("default", k.pod("b"))
    stream = watch.Watch().stream(clients.core.list_namespaced_pod, "default", timeout_seconds=5)
    assert events(stream, 2) == [("ADDED", "a"), ("ADDED", "b")]
    clients.core.create_namespaced_pod("default", k.pod("c"))
    assert events(stream, 1) == [("ADDED", "c")]


def test_the_initial_objects_of_a_watch_are_selected_too(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("plain"))
    clients.core.create_namespaced_pod("default", k.pod("gpu", labels={"gpu": "yes"}))
    stream = watch.Watch().stream(clients.core.list_namespaced_pod, "default", label_selector="gpu=yes",
                                  timeout_seconds=5)
    assert events(stream, 1) == [("ADDED", "gpu")]


def test_watches_keep_to_their_namespace_or_see_all(clients: Clients) -> None:
    clients.core.create_namespace(k.namespace("team-a"))
    start = clients.core.list_pod_for_all_namespaces().metadata.resource_version
    clients.core.create_namespaced_pod("team-a", k.pod("a", namespace="team-a"))
    clients.core.create_namespaced_pod("default", k.pod("d"))
    everywhere = watch.Watch().stream(clients.core.list_pod_for_all_namespaces, resource_version=start,
                                      timeout_seconds=5)
    assert events(everywhere, 2) == [("ADDED", "a"), ("ADDED", "d")]
    in_default = watch.Watch().stream(clients.core.list_namespaced_pod, "default", resource_version=start,
                                      timeout_seconds=5)
    assert events(in_default, 1) == [("ADDED", "d")]


def test_objects_entering_and_leaving_a_selector_are_added_and_deleted(clients: Clients) -> None:
    start = clients.core.list_namespaced_pod("default").metadata.resource_version
    clients.core.create_namespaced_pod("default", k.pod("p"))
    clients.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"gpu": "yes"}}})
    clients.core.patch_namespaced_pod("p", "default", {"metadata": {"annotations": {"seen": "1"}}})
    clients.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"gpu": None}}})
    stream = watch.Watch().stream(clients.core.list_namespaced_pod, "default", label_selector="gpu=yes",
                                  resource_version=start, timeout_seconds=5)
    assert events(stream, 3) == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]


def test_field_selected_watch_sees_a_pod_bound_to_its_node(clients: Clients) -> None:
    start = clients.core.list_namespaced_pod("default").metadata.resource_version
    clients.core.create_namespaced_pod("default", k.pod("p"))
    clients.core.create_namespaced_pod_binding("p", "default", k.binding("p", "n1"), _preload_content=False)
    stream = watch.Watch().stream(clients.core.list_pod_for_all_namespaces, field_selector="spec.nodeName=n1",
                                  resource_version=start, timeout_seconds=5)
    assert events(stream, 1) == [("ADDED", "p")]


def test_a_compacted_resource_version_surfaces_as_410_from_the_client(kube_api: KubeApiFake,
                                                                      clients: Clients) -> None:
    start = clients.core.list_namespaced_pod("default").metadata.resource_version
    clients.core.create_namespaced_pod("default", k.pod("p"))
    kube_api.compact()
    with pytest.raises(ApiException) as expired:
        # The client retries a 410 once from the same resourceVersion, then raises.
        next(watch.Watch().stream(clients.core.list_namespaced_pod, "default", resource_version=start))
    assert expired.value.status == 410
    assert expired.value.reason.startswith("Expired: too old resource version")


def test_the_410_arrives_as_an_error_event_on_a_200_stream(kube_api: KubeApiFake, clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"))
    kube_api.compact()
    response = clients.core.list_namespaced_pod("default", watch=True, resource_version="1",
                                                _preload_content=False)
    assert response.status == 200
    event = json.loads(response.data.decode().splitlines()[0])
    assert (event["type"], event["object"]["code"], event["object"]["reason"]) == ("ERROR", 410, "Expired")


def test_compact_keeps_the_newest_changes(kube_api: KubeApiFake, clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("a"))
    kept_from = kube_api.resource_version
    clients.core.create_namespaced_pod("default", k.pod("b"))
    kube_api.compact(keep=1)
    stream = watch.Watch().stream(clients.core.list_namespaced_pod, "default", resource_version=kept_from,
                                  timeout_seconds=5)
    assert events(stream, 1) == [("ADDED", "b")]


def test_a_watch_resumes_after_its_connection_is_dropped(kube_api: KubeApiFake, clients: Clients) -> None:
    start = clients.core.list_namespaced_pod("default").metadata.resource_version
    clients.core.create_namespaced_pod("default", k.pod("a"))
    w = watch.Watch()
    stream = w.stream(clients.core.list_namespaced_pod, "default", resource_version=start)
    assert events(stream, 1) == [("ADDED", "a")]

    assert kube_api.drop_watches() == 1
    clients.core.create_namespaced_pod("default", k.pod("missed"))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        next(stream)

    resumed = watch.Watch().stream(clients.core.list_namespaced_pod, "default", resource_version=w.resource_version,
                                   timeout_seconds=5)
    assert events(resumed, 1) == [("ADDED", "missed")]


def test_bookmarks_carry_the_newest_resource_version() -> None:
    with KubeApiFake(bookmark_interval=0.2) as fake:
        clients = clients_for(fake)
        start = clients.core.list_namespaced_pod("default").metadata.resource_version
        clients.core.create_namespaced_config_map("default", {"metadata": {"name": "unrelated"}})
        w = watch.Watch()
        stream = w.stream(clients.core.list_namespaced_pod, "default", resource_version=start,
                          allow_watch_bookmarks=True, timeout_seconds=5)
        assert events(stream, 1) == [("BOOKMARK", fake.resource_version)]
        assert w.resource_version == fake.resource_version


def test_send_initial_events_ends_with_an_annotated_bookmark(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("a"))
    stream = watch.Watch().stream(clients.core.list_namespaced_pod, "default", send_initial_events=True,
                                  resource_version_match="NotOlderThan", resource_version="",
                                  allow_watch_bookmarks=True, timeout_seconds=5)
    added, bookmark = next(stream), next(stream)
    assert (added["type"], bookmark["type"]) == ("ADDED", "BOOKMARK")
    assert bookmark["raw_object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


@pytest.mark.parametrize("value", ["true", "1", "True"])
def test_boolean_query_parameters_decode_as_apimachinery_does(kube_api: KubeApiFake, value: str) -> None:
    kube_api.put(k.pod("p"))
    response = urllib3.request("GET", f"{kube_api.url}/api/v1/namespaces/default/pods",
                               fields={"watch": value, "timeoutSeconds": "1"}, preload_content=False)
    assert json.loads(response.readline())["type"] == "ADDED"
    response.close()


def test_timeout_seconds_ends_the_stream(clients: Clients) -> None:
    started = time.monotonic()
    assert list(watch.Watch().stream(clients.core.list_namespaced_pod, "default", timeout_seconds=1)) == []
    assert 0.9 <= time.monotonic() - started < 3


async def test_an_async_test_can_watch_without_blocking_the_server(kube_api: KubeApiFake) -> None:
    """The server has its own loop: a test's event loop (aiohttp, kubernetes_asyncio) can drive it too."""
    url = f"{kube_api.url}/api/v1/namespaces/default/pods?watch=true&resourceVersion=0&timeoutSeconds=5"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await asyncio.to_thread(kube_api.put, k.pod("p"))
        line = await asyncio.wait_for(response.content.readline(), timeout=5)
    assert json.loads(line)["type"] == "ADDED"
