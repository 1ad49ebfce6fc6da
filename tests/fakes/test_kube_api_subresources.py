"""The fake API server's subresources and custom resources, driven by the official client over real HTTP:
pods/binding, pods/eviction with PodDisruptionBudgets, and scheduler-plugins PodGroups."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from kubernetes import watch
from kubernetes.client import ApiException

from tests.fakes import kube_objects as k
from tests.fakes.kube_clients import Clients, error_body, raw
from tests.fakes.kubeapi import KubeApiFake

# -- binding ----------------------------------------------------------------------------------------------


def bind(clients: Clients, body: dict[str, Any], *, pod: str = "p") -> dict[str, Any]:
    # _preload_content=False: the server answers a Status, which the client cannot read as a V1Binding.
    return raw(clients.core.create_namespaced_pod_binding(pod, "default", body, _preload_content=False))


def test_binding_assigns_the_node_and_copies_annotations_in_one_write(kube_api: KubeApiFake,
                                                                      clients: Clients) -> None:
    created = clients.core.create_namespaced_pod("default", k.pod("p", annotations={"mine": "kept"}))
    answer = bind(clients, k.binding("p", "n1", uid=created.metadata.uid,
                                     annotations={"gpusched.io/gpus": "GPU-a,GPU-b"}))
    assert (answer["kind"], answer["status"], answer["code"]) == ("Status", "Success", 201)

    pod = kube_api.get("pods", "default", "p")
    assert pod["spec"]["nodeName"] == "n1"
    assert pod["metadata"]["annotations"] == {"mine": "kept", "gpusched.io/gpus": "GPU-a,GPU-b"}
    assert [(c["type"], c["status"]) for c in pod["status"]["conditions"]] == [("PodScheduled", "True")]
    # One atomic update: exactly one new resourceVersion, one MODIFIED event.
    assert int(pod["metadata"]["resourceVersion"]) == int(created.metadata.resource_version) + 1
    stream = watch.Watch().stream(clients.core.list_namespaced_pod, "default", timeout_seconds=5,
                                  resource_version=created.metadata.resource_version)
    assert next(stream)["raw_object"]["metadata"]["annotations"]["gpusched.io/gpus"] == "GPU-a,GPU-b"


def test_the_typed_client_cannot_read_the_binding_answer(clients: Clients) -> None:
    """As against a real server: the pod is bound, then the client fails to deserialise the Status."""
    clients.core.create_namespaced_pod("default", k.pod("p"))
    with pytest.raises(pydantic.ValidationError):
        clients.core.create_namespaced_pod_binding("p", "default", k.binding("p", "n1"))
    assert clients.core.read_namespaced_pod("p", "default").spec.node_name == "n1"


def test_the_legacy_bindings_endpoint_binds_too(clients: Clients) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p"))
    clients.core.create_namespaced_binding("default", k.binding("p", "n2"), _preload_content=False)
    assert clients.core.read_namespaced_pod("p", "default").spec.node_name == "n2"


@pytest.mark.parametrize(("setup", "message"), [
    pytest.param("other-uid", "Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000",
                 id="uid-precondition"),
    pytest.param("assigned", 'pod p is already assigned to node "n0"', id="already-assigned"),
    pytest.param("deleting", "pod p is being deleted, cannot be assigned to a host", id="being-deleted"),
])
def test_binding_conflicts(kube_api: KubeApiFake, clients: Clients, setup: str, message: str) -> None:
    clients.core.create_namespaced_pod("default", k.pod("p", node="n0" if setup == "assigned" else None))
    if setup == "deleting":
        clients.core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": ["gpusched.io/hold"]}})
        clients.core.delete_namespaced_pod("p", "default")
    uid = "00000000-0000-0000-0000-000000000000" if setup == "other-uid" else None
    before = kube_api.get("pods", "default", "p")
    with pytest.raises(ApiException) as refused:
        bind(clients, k.binding("p", "n1", uid=uid, annotations={"gpusched.io/gpus": "GPU-a"}))
    assert (refused.value.status, error_body(refused.value)["reason"]) == (409, "Conflict")
    assert message in error_body(refused.value)["message"]
    assert kube_api.get("pods", "default", "p") == before, "a refused binding changes nothing"


def test_binding_a_missing_pod_is_404(clients: Clients) -> None:
    with pytest.raises(ApiException) as missing:
        bind(clients, k.binding("ghost", "n1"), pod="ghost")
    assert missing.value.status == 404


def test_binding_is_post_only(kube_api: KubeApiFake) -> None:
    import urllib3

    response = urllib3.request("GET", f"{kube_api.url}/api/v1/namespaces/default/pods/p/binding")
    assert (response.status, response.json()["reason"]) == (405, "MethodNotAllowed")


# -- eviction ---------------------------------------------------------------------------------------------

def evict(clients: Clients, name: str) -> dict[str, Any]:
    return raw(clients.core.create_namespaced_pod_eviction(name, "default", k.eviction(name),
                                                           _preload_content=False))


@pytest.fixture
def three_running_workers(kube_api: KubeApiFake) -> None:
    """w1..w3: Running and Ready, labelled app=train, of the ReplicaSet `train` (so its scale is 3)."""
    for name in ("w1", "w2", "w3"):
        kube_api.put(k.running(k.pod(name, labels={"app": "train"}, node="n1", replica_set="train")))


def test_eviction_without_a_budget_deletes_the_pod(kube_api: KubeApiFake, clients: Clients,
                                                   three_running_workers: None) -> None:
    assert evict(clients, "w1")["status"] == "Success"
    assert kube_api.get("pods", "default", "w1") is None


@pytest.mark.parametrize(("budget", "evictable"), [
    # 3 ready pods of a ReplicaSet of 3; desiredHealthy = minAvailable, or 3 - maxUnavailable (percents
    # rounded up); the ReplicaSet's scale stays 3 while its pods are evicted
    pytest.param({"min_available": 3}, 0, id="minAvailable=3:none"),
    pytest.param({"min_available": 2}, 1, id="minAvailable=2:one"),
    pytest.param({"min_available": "50%"}, 1, id="minAvailable=50%:ceil(1.5)=2 stay"),
    pytest.param({"max_unavailable": 0}, 0, id="maxUnavailable=0:none"),
    pytest.param({"max_unavailable": "34%"}, 2, id="maxUnavailable=34%:ceil(1.02)=2"),
])
def test_a_budget_allows_only_its_disruptions(kube_api: KubeApiFake, clients: Clients,
                                              three_running_workers: None, budget: dict[str, Any],
                                              evictable: int) -> None:
    clients.policy.create_namespaced_pod_disruption_budget("default", k.pdb("train", match_labels={"app": "train"},
                                                                            **budget))
    outcomes = []
    for name in ("w1", "w2", "w3"):
        try:
            evict(clients, name)
            outcomes.append("evicted")
        except ApiException as refused:
            assert refused.status == 429
            outcomes.append("kept")
    assert outcomes.count("evicted") == evictable


def test_a_refused_eviction_is_429_naming_the_budget(kube_api: KubeApiFake, clients: Clients,
                                                     three_running_workers: None) -> None:
    clients.policy.create_namespaced_pod_disruption_budget("default", k.pdb("train", match_labels={"app": "train"},
                                                                            min_available=3))
    with pytest.raises(ApiException) as refused:
        evict(clients, "w1")
    body = error_body(refused.value)
    assert (refused.value.status, body["reason"]) == (429, "TooManyRequests")
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [{"reason": "DisruptionBudget", "message":
                                          "The disruption budget train needs 3 healthy pods and has 3 currently"}]
    assert kube_api.get("pods", "default", "w1") is not None


def test_an_allowed_eviction_is_recorded_in_the_budget(kube_api: KubeApiFake, clients: Clients,
                                                       three_running_workers: None) -> None:
    clients.policy.create_namespaced_pod_disruption_budget("default", k.pdb("train", match_labels={"app": "train"},
                                                                            max_unavailable=1))
    evict(clients, "w2")
    status = kube_api.get("poddisruptionbudgets", "default", "train")["status"]
    assert (status["disruptionsAllowed"], status["currentHealthy"], status["desiredHealthy"]) == (0, 3, 2)
    assert list(status["disruptedPods"]) == ["w2"]


def test_pending_and_unready_pods_may_go_despite_the_budget(kube_api: KubeApiFake, clients: Clients,
                                                            three_running_workers: None) -> None:
    kube_api.put(k.pod("pending", labels={"app": "train"}))
    kube_api.put(k.running(k.pod("unready", labels={"app": "train"}), ready=False))
    clients.policy.create_namespaced_pod_disruption_budget("default", k.pdb("train", match_labels={"app": "train"},
                                                                            min_available=3))
    evict(clients, "pending")
    evict(clients, "unready")
    assert {p["metadata"]["name"] for p in kube_api.objects("pods")} == {"w1", "w2", "w3"}


def test_a_scale_based_budget_over_unmanaged_pods_never_syncs(kube_api: KubeApiFake, clients: Clients) -> None:
    kube_api.put(k.running(k.pod("bare", labels={"app": "x"})))
    clients.policy.create_namespaced_pod_disruption_budget("default", k.pdb("x", match_labels={"app": "x"},
                                                                            max_unavailable=1))
    with pytest.raises(ApiException) as refused:
        evict(clients, "bare")
    assert refused.value.status == 429
    assert "is still being processed by the server" in error_body(refused.value)["details"]["causes"][0]["message"]
    condition = kube_api.get("pdb", "default", "x")["status"]["conditions"][0]
    assert (condition["reason"], condition["message"]) == ("SyncFailed", 'found no controller ref for pod "bare"')


def test_two_budgets_over_one_pod_are_a_500(clients: Clients, three_running_workers: None) -> None:
    for name in ("a", "b"):
        clients.policy.create_namespaced_pod_disruption_budget("default", k.pdb(name, match_labels={"app": "train"},
                                                                                max_unavailable=1))
    with pytest.raises(ApiException) as refused:
        evict(clients, "w1")
    assert refused.value.status == 500


# -- PodGroups (a custom resource) --------------------------------------------------------------------------

GROUP, VERSION, PLURAL = "scheduling.x-k8s.io", "v1alpha1", "podgroups"


def test_podgroups_through_custom_objects_api(clients: Clients) -> None:
    custom = clients.custom
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                     {**k.podgroup("train-7", min_member=4), "junk": 1})
    assert (created["kind"], created["spec"], created["metadata"]["generation"]) == ("PodGroup", {"minMember": 4}, 1)
    assert "junk" not in created, "undeclared fields are pruned, as the CRD's structural schema does"

    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert listed["kind"] == "PodGroupList" and listed["items"][0]["kind"] == "PodGroup"

    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "train-7",
                                                    {"spec": {"minMember": 8}})
    assert (patched["spec"]["minMember"], patched["metadata"]["generation"]) == (8, 2)

    custom.patch_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "train-7",
                                                 {"status": {"phase": "Scheduled", "scheduled": 8}})
    fetched = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "train-7")
    assert (fetched["status"]["phase"], fetched["metadata"]["generation"]) == ("Scheduled", 2)

    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "train-7")
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "train-7")
    assert gone.value.status == 404
    assert error_body(gone.value)["message"] == 'podgroups.scheduling.x-k8s.io "train-7" not found'


def test_podgroups_can_be_watched(clients: Clients) -> None:
    start = clients.custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["metadata"]
    clients.custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, k.podgroup("g", min_member=2))
    stream = watch.Watch().stream(clients.custom.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL,
                                  resource_version=start["resourceVersion"], timeout_seconds=5)
    event = next(stream)
    assert (event["type"], event["object"]["kind"], event["object"]["spec"]) == ("ADDED", "PodGroup",
                                                                                 {"minMember": 2})


@pytest.mark.parametrize(("change", "status"), [
    pytest.param(lambda pg: pg["metadata"].pop("resourceVersion"), 422, id="replace-needs-resourceVersion"),
    pytest.param(lambda pg: pg["spec"].update(minMember="four"), 422, id="minMember-must-be-integer"),
])
def test_podgroup_replace_is_validated(clients: Clients, change: Any, status: int) -> None:
    created = clients.custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                             k.podgroup("g", min_member=2))
    change(created)
    with pytest.raises(ApiException) as refused:
        clients.custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g", created)
    assert refused.value.status == status


def test_custom_resources_refuse_strategic_merge_patches(clients: Clients) -> None:
    clients.custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, k.podgroup("g", min_member=2))
    with pytest.raises(ApiException) as refused:
        clients.custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g", {"spec": {}},
                                                      _content_type="application/strategic-merge-patch+json")
    assert refused.value.status == 415
