"""Parsing a pod's GPU request: what users write, and the one-line reason for everything invalid."""

import pytest

from scheduler.core.request import GangSpec, InvalidRequest, SharingNeed, parse_pod
from scheduler.core.selector import ModelSelector
from tests.builders import pod


def test_whole_gpus_from_limits():
    req = pod("p").gpus(2).cpu("4").memory("16Gi").request()
    assert (req.gpus, req.gpu_milli, req.cpu_milli, req.memory_mib) == (2, 0, 4000, 16384)
    assert req.wants_gpu and not req.is_share


def test_share_with_memory_and_mps():
    req = pod("p").share(300, memory_mib=4096).mps().request()
    assert (req.gpus, req.gpu_milli, req.gpu_memory_mib, req.sharing) == (0, 300, 4096, SharingNeed.MPS)
    assert req.is_share and req.total_milli == 300


def test_model_selector_and_policy_and_priority():
    built = pod("p").gpus(1).models("A100*,H100*,!A100-PCIE*").policy("binpack").build()
    built["spec"]["priority"] = 100
    req = parse_pod(built)
    assert req.models == ModelSelector(("a100*", "h100*"), ("a100-pcie*",))
    assert (req.policy, req.priority) == ("binpack", 100)


def test_containers_add_up_and_init_containers_take_the_max():
    built = pod("p").build()
    built["spec"]["containers"] = [
        {"name": "a", "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "1"}}},
        {"name": "b", "resources": {"requests": {"cpu": "500m"}, "limits": {"nvidia.com/gpu": "2"}}},
    ]
    built["spec"]["initContainers"] = [{"name": "i", "resources": {"limits": {"cpu": "4"}}}]
    req = parse_pod(built)
    assert (req.gpus, req.cpu_milli) == (3, 4000)


def test_gang_from_label_and_size_annotation():
    req = pod("w0").gpus(8).label("gpusched.io/gang", "train-7").annotate("gpusched.io/gang-size", "4").request()
    assert req.gang == GangSpec("train-7", 4)


def test_gang_from_pod_group_label_has_its_size_later():
    req = pod("w0").gpus(8).label("scheduling.x-k8s.io/pod-group", "pg-1").request()
    assert req.gang == GangSpec("pg-1", None, from_pod_group=True)


@pytest.mark.parametrize(("builder", "reason"), [
    (pod("p").gpus(1).share(500), "whole GPUs (nvidia.com/gpu: 1) and a share (gpusched.io/gpu-milli: 500) at once"),
    (pod("p").share(0), "between 1 and 999, got 0"),
    (pod("p").share(1000), "between 1 and 999, got 1000 (for a whole GPU use nvidia.com/gpu: 1)"),
    (pod("p").share(1500), "between 1 and 999, got 1500"),
    (pod("p").gpus("0.5"), "nvidia.com/gpu must be a whole number, got '0.5'; for part of a GPU use gpusched.io/gpu-milli"),
    (pod("p").gpus("500m"), "must be a whole number"),
    (pod("p").share("0.5"), "gpusched.io/gpu-milli must be a whole number"),
    (pod("p").share(500, memory_mib=-1), "gpusched.io/gpu-memory cannot be negative"),
    (pod("p").share(500, memory_mib=2**21), "more memory than any GPU has"),
    (pod("p").share(500, memory_mib="1.5"), "gpusched.io/gpu-memory must be a whole number"),
    (pod("p").share(500).annotate("gpusched.io/sharing", "exclusive-ish"), "unknown sharing mode 'exclusive-ish'"),
    (pod("p").gpus(1).mps(), "applies to a share"),
    (pod("p").gpus(1).models("A100,,H100"), "empty term"),
    (pod("p").gpus(1).models("A100[x"), "malformed GPU model glob"),
    (pod("p").gpus(1).models("!"), "empty term"),
    (pod("p").gpus(1).models(" "), "empty GPU model list"),
    (pod("p").gpus(-1), "cannot be negative"),
    (pod("p").gpus(5000), "more GPUs than any pod can use"),
    (pod("p").cpu("lots").gpus(1), "cpu: not a quantity: 'lots'"),
    (pod("p").gpus(1).label("gpusched.io/gang", "g"), "annotation gpusched.io/gang-size is missing"),
    (pod("p").gpus(1).label("gpusched.io/gang", "g").annotate("gpusched.io/gang-size", "three"),
     "gpusched.io/gang-size must be a positive integer, got 'three'"),
    (pod("p").gpus(1).label("gpusched.io/gang", "Bad_Name").annotate("gpusched.io/gang-size", "2"),
     "not a valid name"),
    (pod("p").share(500).annotate("gpusched.io/gang-timeout-seconds", "0"), "must be a positive integer"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_invalid_requests_have_one_clear_reason(builder, reason):
    with pytest.raises(InvalidRequest) as caught:
        builder.request()
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("mutate", [
    lambda p: p.update(metadata="x"),
    lambda p: p["spec"].update(containers="x"),
    lambda p: p["spec"]["containers"][0].update(resources=[1]),
    lambda p: p["metadata"].update(annotations={"a": 1}),
    lambda p: p["metadata"].pop("name"),
    lambda p: p["spec"].update(priority="high"),
], ids=["metadata", "containers", "resources", "annotations", "name", "priority"])
def test_malformed_pod_json_is_an_invalid_request(mutate):
    built = pod("p").gpus(1).build()
    mutate(built)
    with pytest.raises(InvalidRequest):
        parse_pod(built)


def test_gpu_memory_alone_is_not_a_request():
    built = pod("p").build()
    built["spec"]["containers"][0]["resources"]["limits"]["gpusched.io/gpu-memory"] = "1024"
    with pytest.raises(InvalidRequest, match=r"needs gpusched\.io/gpu-milli"):
        parse_pod(built)
