"""The fake API server, driven by the official `kubernetes` client over real HTTP: objects and verbs.

Watches are in test_kube_api_watch.py; binding, eviction and custom resources in
test_kube_api_subresources.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.fakes import kube_objects as k
from tests.fakes.kube_clients import Clients, clients_for, error_body, raw
from tests.fakes.kubeapi import KubeApiFake


@dataclass(frozen=True)
class Kind:
    """How the typed client spells one resource's verbs: `{verb}_{suffix}`, with or without a namespace."""

    api: str
    suffix: str
    namespaced: bool
    kind: str
    api_version: str
    body: Callable[[str], dict[str, Any]]
    has_generation: bool = False
    deleted_answer: str = "Status"  # what a delete answers: the object's kind, or a Status

    def call(self, clients: Clients, verb: str, *args: Any) -> dict[str, Any]:
        method = getattr(getattr(clients, self.api), f"{verb}_{self.suffix}")
        name_args = list(args[:1]) if verb in ("read", "replace", "delete") else []
        rest = list(args[1:]) if verb in ("read", "replace", "delete") else list(args)
        namespace = ["default"] if self.namespaced else []
        return raw(method(*name_args, *namespace, *rest, _preload_content=False))


KINDS = {
    "namespace": Kind("core", "namespace", False, "Namespace", "v1", lambda n: k.namespace(n),
                      deleted_answer="Namespace"),
    "node": Kind("core", "node", False, "Node", "v1", lambda n: k.node(n, gpus=8)),
    "pod": Kind("core", "namespaced_pod", True, "Pod", "v1", lambda n: k.pod(n), has_generation=True,
                deleted_answer="Pod"),
    "configmap": Kind("core", "namespaced_config_map", True, "ConfigMap", "v1",
                      lambda n: {"metadata": {"name": n}, "data": {"policy": "binpack"}}),
    "resourcequota": Kind("core", "namespaced_resource_quota", True, "ResourceQuota", "v1",
                          lambda n: {"metadata": {"name": n}, "spec": {"hard": {"requests.nvidia.com/gpu": "4"}}}),
    "event": Kind("core", "namespaced_event", True, "Event", "v1",
                  lambda n: {"metadata": {"name": n}, "reason": "Scheduled", "message": "bound", "type": "Normal",
                             "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}}),
    "event.events.k8s.io": Kind("events", "namespaced_event", True, "Event", "events.k8s.io/v1",
                                lambda n: {"metadata": {"name": n}, "reason": "Scheduled", "note": "bound",
                                           "type": "Normal", "action": "Bind", "reportingController": "gpusched",
                                           "reportingInstance": "gpusched-0",
                                           "eventTime": "2024-05-01T10:00:00.000000Z",
                                           "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}}),
    "lease": Kind("coordination", "namespaced_lease", True, "Lease", "coordination.k8s.io/v1",
                  lambda n: k.lease(n, holder="a")),
    "pdb": Kind("policy", "namespaced_pod_disruption_budget", True, "PodDisruptionBudget", "policy/v1",
                lambda n: k.pdb(n, match_labels={"app": "x"}, min_available=1), has_generation=True),
}


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_each_kind_goes_through_create_read_list_replace_delete(clients: Clients, kind: Kind) -> None:
    created = kind.call(clients, "create", kind.body("thing-1"))
    metadata = created["metadata"]
    assert (created["kind"], created["apiVersion"]) == (kind.kind, kind.api_version)
    assert metadata["uid"] and metadata["resourceVersion"] and metadata["creationTimestamp"].endswith("Z")
    assert metadata.get("generation") == (1 if kind.has_generation else None)

    assert kind.call(clients, "read", "thing-1") == created
    listed = kind.call(clients, "list")
    assert [item["metadata"]["name"] for item in listed["items"] if item["metadata"]["name"] == "thing-1"]
    assert "kind" not in listed["items"][0], "built-in list items carry no kind, as the server sends them"
    assert int(listed["metadata"]["resourceVersion"]) >= int(metadata["resourceVersion"])

    changed = {**created, "metadata": {**metadata, "labels": {**metadata.get("labels", {}), "team": "a"}}}
    replaced = kind.call(clients, "replace", "thing-1", changed)
    assert replaced["metadata"]["labels"]["team"] == "a"
    assert int(replaced["metadata"]["resourceVersion"]) > int(metadata["resourceVersion"])
    assert replaced["metadata"].get("generation") == metadata.get("generation"), "labels are not spec"

    assert kind.call(clients, "delete", "thing-1")["kind"] == kind.deleted_answer
    with pytest.raises(ApiException) as gone:
        kind.call(clients, "read", "thing-1")
    assert gone.value.status == 404
    assert error_body(gone.value)["reason"] == "NotFound"


def test_an_event_written_through_one_api_is_read_through_the_other(clients: Clients) -> None:
    KINDS["event.events.k8s.io"].call(clients, "create", KINDS["event.events.k8s.io"].body("e1"))
    core_view = KINDS["event"].call(clients, "read", "e1")
    assert (core_view["message"], core_view["involvedObject"]["name"]) == ("bound", "p")
    assert core_view["reportingComponent"] == "gpusched"


def test_creating_an_existing_name_is_409_already_exists(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"))
    with pytest.raises(ApiException) as conflict:
        clients.core.create_namespaced_pod("default", k.pod("p"))
    assert conflict.value.status == 409
    assert error_body(conflict.value)["reason"] == "AlreadyExists"
    assert error_body(conflict.value)["message"] == 'pods "p" already exists'


def test_objects_need_an_existing_namespace(clients: Clients) -> None:
    with pytest.raises(ApiException) as missing:
        clients.core.create_namespaced_pod("nowhere", k.pod("p", namespace="nowhere"))
    assert (missing.value.status, error_body(missing.value)["message"]) == (404, 'namespaces "nowhere" not found')


def test_generate_name_gets_a_random_suffix(clients: Clients) -> None:
    created = raw(clients.core.create_namespaced_config_map("default", {"metadata": {"generateName": "cm-"}},
                                                            _preload_content=False))
    assert created["metadata"]["name"].startswith("cm-") and len(created["metadata"]["name"]) == 8


# -- optimistic concurrency -------------------------------------------------------------------------------

def test_a_replace_carrying_a_stale_resource_version_is_409_conflict(clients: Clients) -> None:
    first = clients.core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    clients.core.replace_namespaced_config_map("cm", "default", {**first.to_dict(), "data": {"a": "2"}})
    with pytest.raises(ApiException) as stale:
        clients.core.replace_namespaced_config_map("cm", "default", {**first.to_dict(), "data": {"a": "3"}})
    assert stale.value.status == 409
    assert error_body(stale.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "cm": the object has been modified; please apply your '
        "changes to the latest version and try again")


def test_a_replace_that_changes_nothing_writes_nothing(kube_api: KubeApiFake, clients: Clients) -> None:
    created = raw(clients.core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}},
                                                            _preload_content=False))
    again = raw(clients.core.replace_namespaced_config_map("cm", "default", created, _preload_content=False))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"] == kube_api.resource_version


def test_two_clients_contending_for_a_lease_one_wins_one_gets_409(kube_api: KubeApiFake) -> None:
    alice, bob = clients_for(kube_api).coordination, clients_for(kube_api).coordination
    alice.create_namespaced_lease("default", k.lease("leader"))
    seen_by_alice = alice.read_namespaced_lease("leader", "default")
    seen_by_bob = bob.read_namespaced_lease("leader", "default")

    seen_by_alice.spec.holder_identity = "alice"
    alice.replace_namespaced_lease("leader", "default", seen_by_alice)
    seen_by_bob.spec.holder_identity = "bob"
    with pytest.raises(ApiException) as lost:
        bob.replace_namespaced_lease("leader", "default", seen_by_bob)
    assert lost.value.status == 409
    with pytest.raises(ApiException) as lost_patch:
        bob.patch_namespaced_lease("leader", "default", {"metadata": {"resourceVersion": seen_by_bob.metadata.
                                                                      resource_version},
                                                         "spec": {"holderIdentity": "bob"}})
    assert lost_patch.value.status == 409
    assert kube_api.get("leases", "default", "leader")["spec"]["holderIdentity"] == "alice"


def test_lease_times_are_stored_as_micro_times(clients: Clients) -> None:
    clients.coordination.create_namespaced_lease("default", {**k.lease("l"), "spec": {
        "holderIdentity": "a", "renewTime": "2024-05-01T10:00:00+02:00"}})
    stored = raw(clients.coordination.read_namespaced_lease("l", "default", _preload_content=False))
    assert stored["spec"]["renewTime"] == "2024-05-01T08:00:00.000000Z"


# -- patches --------------------------------------------------------------------------------------------

MERGE, STRATEGIC, JSON_PATCH = ("application/merge-patch+json", "application/strategic-merge-patch+json",
                                "application/json-patch+json")


@pytest.mark.parametrize(("content_type", "patch", "annotations"), [
    pytest.param(MERGE, {"metadata": {"annotations": {"b": "2", "a": None}}}, {"b": "2", "keep": "x"},
                 id="merge-adds-and-null-deletes"),
    pytest.param(STRATEGIC, {"metadata": {"annotations": {"b": "2", "a": None}}}, {"b": "2", "keep": "x"},
                 id="strategic-adds-and-null-deletes"),
    pytest.param(JSON_PATCH, [{"op": "add", "path": "/metadata/annotations/b", "value": "2"},
                              {"op": "remove", "path": "/metadata/annotations/a"}], {"b": "2", "keep": "x"},
                 id="json-patch-add-remove"),
    pytest.param(JSON_PATCH, [{"op": "replace", "path": "/metadata/annotations", "value": {"c": "3"}}], {"c": "3"},
                 id="json-patch-replace-whole-map"),
])
def test_patches_change_annotations(clients: Clients, content_type: str, patch: Any,
                                    annotations: dict[str, str]) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p", annotations={"a": "1", "keep": "x"}))
    patched = raw(clients.core.patch_namespaced_pod("p", "default", patch, _content_type=content_type,
                                                    _preload_content=False))
    assert patched["metadata"]["annotations"] == annotations


def test_strategic_merge_patch_merges_conditions_by_type(clients: Clients) -> None:
    clients.core.create_node(k.node("n1"))
    conditions = [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]
    clients.core.patch_node_status("n1", {"status": {"conditions": conditions}})
    clients.core.patch_node_status("n1", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    stored = raw(clients.core.read_node("n1", _preload_content=False))["status"]["conditions"]
    assert [(c["type"], c["status"]) for c in stored] == [("Ready", "False"), ("MemoryPressure", "False")]


@pytest.mark.parametrize(("content_type", "stale_patch"), [
    (MERGE, lambda rv: {"metadata": {"resourceVersion": rv, "labels": {"a": "2"}}}),
    (STRATEGIC, lambda rv: {"metadata": {"resourceVersion": rv, "labels": {"a": "2"}}}),
    (JSON_PATCH, lambda rv: [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
                             {"op": "add", "path": "/metadata/labels/a", "value": "2"}]),
], ids=["merge", "strategic", "json-patch"])
def test_a_patch_carrying_a_stale_resource_version_is_409(clients: Clients, content_type: str,
                                                          stale_patch: Callable[[str], Any]) -> None:
    created = clients.core.create_namespaced_pod("default", k.pod("p"))
    clients.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "1"}}})
    with pytest.raises(ApiException) as conflict:
        clients.core.patch_namespaced_pod("p", "default", stale_patch(created.metadata.resource_version),
                                          _content_type=content_type)
    assert (conflict.value.status, error_body(conflict.value)["reason"]) == (409, "Conflict")


def test_a_failed_json_patch_test_is_422_and_changes_nothing(kube_api: KubeApiFake, clients: Clients) -> None:
    created = clients.core.create_namespaced_pod("default", k.pod("p", labels={"phase": "a"}))
    patch = [{"op": "test", "path": "/metadata/labels/phase", "value": "b"},
             {"op": "replace", "path": "/metadata/labels/phase", "value": "c"}]
    with pytest.raises(ApiException) as refused:
        clients.core.patch_namespaced_pod("p", "default", patch)
    assert refused.value.status == 422
    assert kube_api.get("pods", "default", "p")["metadata"]["resourceVersion"] == created.metadata.resource_version


def test_a_pod_spec_cannot_be_patched_into_a_binding(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"))
    with pytest.raises(ApiException) as refused:
        clients.core.patch_namespaced_pod("p", "default", {"spec": {"nodeName": "n1"}})
    assert refused.value.status == 422
    assert "pod updates may not change fields other than" in error_body(refused.value)["message"]


def test_main_resource_updates_ignore_status_and_status_updates_ignore_spec(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"))
    clients.core.patch_namespaced_pod("p", "default", {"status": {"phase": "Running"}})
    assert clients.core.read_namespaced_pod("p", "default").status.phase == "Pending"
    clients.core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"},
                                                              "spec": {"schedulerName": "other"}})
    pod = clients.core.read_namespaced_pod("p", "default")
    assert (pod.status.phase, pod.spec.scheduler_name) == ("Running", "default-scheduler")


# -- delete -----------------------------------------------------------------------------------------------

def test_delete_honours_a_uid_precondition(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"))
    options = kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(uid="not-it"))
    with pytest.raises(ApiException) as refused:
        clients.core.delete_namespaced_pod("p", "default", body=options)
    assert refused.value.status == 409
    assert "Precondition failed: UID in precondition: not-it" in error_body(refused.value)["message"]


def test_finalizers_hold_a_deleted_object_until_removed(kube_api: KubeApiFake, clients: Clients) -> None:
    clients.core.create_namespaced_config_map("default", {"metadata": {"name": "cm", "finalizers": ["x/y"]}})
    marked = raw(clients.core.delete_namespaced_config_map("cm", "default", _preload_content=False))
    assert marked["metadata"]["deletionTimestamp"]
    clients.core.patch_namespaced_config_map("cm", "default", {"metadata": {"finalizers": None}})
    assert kube_api.get("configmaps", "default", "cm") is None


def test_deleting_a_namespace_deletes_its_content(kube_api: KubeApiFake, clients: Clients) -> None:
    clients.core.create_namespace(k.namespace("team-a"))
    clients.core.create_namespaced_pod("team-a", k.pod("p", namespace="team-a"))
    clients.core.delete_namespace("team-a")
    assert kube_api.objects("pods", "team-a") == []


# -- list: selectors, paging, resourceVersion ------------------------------------------------------------

@pytest.fixture
def labelled_pods(kube_api: KubeApiFake) -> None:
    """a: team=ml,tier=gpu on n1, Running; b: team=ml on n2; c: team=web, unassigned; d: no labels."""
    kube_api.put({**k.running(k.pod("a", labels={"team": "ml", "tier": "gpu"}, node="n1"))})
    kube_api.put(k.pod("b", labels={"team": "ml"}, node="n2"))
    kube_api.put(k.pod("c", labels={"team": "web"}))
    kube_api.put(k.pod("d"))


@pytest.mark.parametrize(("selector", "names"), [
    ("team=ml", "ab"), ("team==ml", "ab"), ("team!=ml", "cd"), ("team in (ml,web)", "abc"),
    ("team notin (ml)", "cd"), ("tier", "a"), ("!tier", "bcd"), ("team=ml,!tier", "b"), ("", "abcd"),
])
def test_label_selectors(clients: Clients, labelled_pods: None, selector: str, names: str) -> None:
    pods = clients.core.list_namespaced_pod("default", label_selector=selector).items
    assert "".join(p.metadata.name for p in pods) == names


@pytest.mark.parametrize(("selector", "names"), [
    ("spec.nodeName=", "cd"), ("spec.nodeName=n1", "a"), ("spec.nodeName!=", "ab"),
    ("status.phase=Running", "a"), ("status.phase!=Running", "bcd"), ("metadata.name==c", "c"),
    ("metadata.namespace=default,spec.nodeName=n2", "b"),
])
def test_field_selectors(clients: Clients, labelled_pods: None, selector: str, names: str) -> None:
    pods = clients.core.list_pod_for_all_namespaces(field_selector=selector).items
    assert "".join(p.metadata.name for p in pods) == names


@pytest.mark.parametrize(("field_selector", "label_selector"), [
    ("spec.containers=x", ""), ("", "team in ml"), ("", "Bad Key=1")], ids=["field", "set-syntax", "key"])
def test_bad_selectors_are_400(clients: Clients, field_selector: str, label_selector: str) -> None:
    with pytest.raises(ApiException) as refused:
        clients.core.list_namespaced_pod("default", field_selector=field_selector, label_selector=label_selector)
    assert refused.value.status == 400


def test_paging_reads_one_snapshot(kube_api: KubeApiFake, clients: Clients, labelled_pods: None) -> None:
    first = clients.core.list_namespaced_pod("default", limit=3)
    assert [p.metadata.name for p in first.items] == ["a", "b", "c"]
    assert first.metadata.remaining_item_count == 1
    kube_api.put(k.pod("e"))  # written between pages: not in the snapshot the pages read
    second = clients.core.list_namespaced_pod("default", limit=3, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["d"]
    assert not second.metadata._continue


def test_a_continue_token_expires_with_compaction(kube_api: KubeApiFake, clients: Clients,
                                                  labelled_pods: None) -> None:
    first = clients.core.list_namespaced_pod("default", limit=2)
    kube_api.put(k.pod("e"))
    kube_api.compact()
    with pytest.raises(ApiException) as expired:
        clients.core.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)
    assert (expired.value.status, error_body(expired.value)["reason"]) == (410, "Expired")


def test_an_exact_list_reads_the_past_until_it_is_compacted(kube_api: KubeApiFake, clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("a"))
    then = clients.core.list_namespaced_pod("default").metadata.resource_version
    clients.core.create_namespaced_pod("default", k.pod("b"))
    clients.core.delete_namespaced_pod("a", "default")
    past = clients.core.list_namespaced_pod("default", resource_version=then, resource_version_match="Exact")
    assert ([p.metadata.name for p in past.items], past.metadata.resource_version) == (["a"], then)
    kube_api.compact()
    with pytest.raises(ApiException) as expired:
        clients.core.list_namespaced_pod("default", resource_version=then, resource_version_match="Exact")
    assert (expired.value.status, error_body(expired.value)["reason"]) == (410, "Expired")


# -- validation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quantity", ["0.5", "500m", "1.5"])
@pytest.mark.parametrize("resource", ["nvidia.com/gpu", "gpusched.io/gpu-milli"])
def test_fractional_extended_resources_are_rejected(clients: Clients, resource: str, quantity: str) -> None:
    with pytest.raises(ApiException) as refused:
        clients.core.create_namespaced_pod("default", k.pod("p", limits={resource: quantity}))
    assert refused.value.status == 422
    assert ": must be an integer" in error_body(refused.value)["message"]
    assert f"spec.containers[0].resources.limits[{resource}]" in error_body(refused.value)["message"]


@pytest.mark.parametrize(("limits", "requests"), [
    ({"nvidia.com/gpu": "2"}, None), ({"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "2"}),
    ({"cpu": "500m", "example.kubernetes.io/thing": "0.5"}, None)], ids=["limit-only", "equal", "native"])
def test_integer_and_native_resources_are_accepted(clients: Clients, limits: dict[str, str],
                                                   requests: dict[str, str] | None) -> None:
    created = clients.core.create_namespaced_pod("default", k.pod("p", limits=limits, requests=requests))
    assert created.spec.containers[0].resources.requests == limits, "requests default to limits"


@pytest.mark.parametrize(("limits", "requests", "message"), [
    ({"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "1"}, "must be equal to nvidia.com/gpu limit of 2"),
    (None, {"nvidia.com/gpu": "1"}, "Limit must be set for non overcommitable resources"),
], ids=["request-below-limit", "request-without-limit"])
def test_extended_resources_cannot_be_overcommitted(clients: Clients, limits: Any, requests: Any,
                                                    message: str) -> None:
    with pytest.raises(ApiException) as refused:
        clients.core.create_namespaced_pod("default", k.pod("p", limits=limits, requests=requests))
    assert refused.value.status == 422 and message in error_body(refused.value)["message"]


@pytest.mark.parametrize("name", ["Upper", "under_score", "-dash", "a" * 254, "dot."])
def test_names_must_be_dns_1123_subdomains(clients: Clients, name: str) -> None:
    with pytest.raises(ApiException) as refused:
        clients.core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    assert refused.value.status == 422
    assert error_body(refused.value)["details"]["causes"][0]["field"] == "metadata.name"


def test_namespace_names_must_be_dns_1123_labels(clients: Clients) -> None:
    with pytest.raises(ApiException) as refused:
        clients.core.create_namespace(k.namespace("a.b"))
    assert refused.value.status == 422


def test_label_values_are_validated(clients: Clients) -> None:
    with pytest.raises(ApiException) as refused:
        clients.core.create_namespaced_pod("default", k.pod("p", labels={"gpusched.io/team": "not valid!"}))
    assert refused.value.status == 422


# -- test controls ---------------------------------------------------------------------------------------

def test_fail_next_answers_the_matching_requests_then_stops(kube_api: KubeApiFake, clients: Clients) -> None:
    fault = kube_api.fail_next("GET", r"/pods$", 500, count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            clients.core.list_namespaced_pod("default")
        assert (failed.value.status, error_body(failed.value)["reason"]) == (500, "InternalError")
    assert clients.core.list_namespaced_pod("default").items == []
    assert fault.hits == 2


def test_fail_next_can_throttle_with_retry_after(kube_api: KubeApiFake, clients: Clients) -> None:
    kube_api.fail_next("POST", r"/pods$", 429, retry_after=3)
    with pytest.raises(ApiException) as throttled:
        clients.core.create_namespaced_pod("default", k.pod("p"))
    assert throttled.value.status == 429 and throttled.value.headers["Retry-After"] == "3"
    assert kube_api.get("pods", "default", "p") is None


def test_fail_next_can_only_delay(kube_api: KubeApiFake, clients: Clients) -> None:
    kube_api.fail_next("*", r"/configmaps", delay=0.3)
    started = time.monotonic()
    clients.core.list_namespaced_config_map("default")
    assert time.monotonic() - started >= 0.3


def test_the_request_log_keeps_order_method_path_query_and_body(kube_api: KubeApiFake, clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"))
    clients.core.patch_namespaced_pod("p", "default", {"metadata": {"annotations": {"gpusched.io/gpus": "GPU-1"}}})
    clients.core.list_namespaced_pod("default", label_selector="a=b")
    (create, patch, listing) = kube_api.requests[-3:]
    assert (create.method, create.path) == ("POST", "/api/v1/namespaces/default/pods")
    assert patch.body == {"metadata": {"annotations": {"gpusched.io/gpus": "GPU-1"}}}
    assert listing.query == {"labelSelector": "a=b"}


def test_kubeconfig_points_the_client_at_the_fake(kube_api: KubeApiFake, tmp_path: Any) -> None:
    path = kube_api.kubeconfig(tmp_path / "config")
    api_client = kubernetes.config.new_client_from_config(config_file=str(path))
    namespaces = kubernetes.client.CoreV1Api(api_client).list_namespace().items
    assert {n.metadata.name for n in namespaces} == {"default", "kube-system", "kube-public", "kube-node-lease"}


def test_dry_run_validates_without_storing(kube_api: KubeApiFake, clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"), dry_run="All")
    assert kube_api.get("pods", "default", "p") is None


def test_stopping_leaves_no_thread_behind() -> None:
    import threading

    before = {t.name for t in threading.enumerate()}
    fake = KubeApiFake().start()
    url = fake.url
    fake.stop()
    fake.stop()
    assert {t.name for t in threading.enumerate()} == before
    with pytest.raises(Exception):  # noqa: B017 - any connection error: nothing listens there any more
        kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(
            kubernetes.client.Configuration(host=url))).list_namespace(_request_timeout=2)
