"""Parsing a pod's GPU request: what users write, and the one-line reason for everything invalid."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.request import (
    MAX_GANG_SIZE,
    MAX_GANG_TIMEOUT_S,
    GangSpec,
    InvalidRequest,
    SharingNeed,
    parse_pod,
)
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


# ------------------------------------------------- hostile input (issue 13, items 1, 8 and 12)
RESOURCES = ["cpu", "memory", "nvidia.com/gpu", "gpusched.io/gpu-milli", "gpusched.io/gpu-memory",
             "ephemeral-storage", "example.com/widget"]


def with_resource(place: str, resource: str, value: object) -> dict:
    """A one-GPU pod with `resource: value` added in one place a pod can carry a quantity."""
    built = pod("p").share(500).build()
    spec = built["spec"]
    if place == "overhead":
        spec["overhead"] = {resource: value}
    elif place == "init":
        spec["initContainers"] = [{"name": "i", "resources": {"limits": {resource: value}}}]
    else:  # "requests" or "limits" of the main container
        spec["containers"][0]["resources"][place][resource] = value
    return built


@settings(max_examples=150, deadline=None)
@given(place=st.sampled_from(["requests", "limits", "init", "overhead"]), resource=st.sampled_from(RESOURCES),
       value=st.one_of(st.integers(-(10**15), -1), st.integers(-(10**15), -1).map(str),
                       st.sampled_from(["-100", "-1m", "-0.001", "-1Gi", "-1e3", "-1n"])))
def test_a_negative_request_or_limit_of_any_resource_is_refused(place, resource, value):
    # cpu: "-100" with a share used to pass filter and bind, leaving usedCpuMilli -100000 in /state.
    # (-1m of a GPU resource is refused as not whole, which is as good a reason.)
    with pytest.raises(InvalidRequest, match=r"cannot be negative|must be a whole number") as caught:
        parse_pod(with_resource(place, resource, value))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("builder", "reason"), [
    (pod("p").share(500).cpu("1" + "0" * 5000), "cpu: '10000000000000000000000000000000'... (5001 characters) is longer than a quantity can be"),
    (pod("p").gpus("1e3000000"), "nvidia.com/gpu must be a whole number"),
    (pod("p").share(500).memory("1e10000000"), "exponent 10000000 is out of range"),
    (pod("p").gpus(1).label("gpusched.io/gang", "g").annotate("gpusched.io/gang-size", "1")
     .annotate("gpusched.io/gang-timeout-seconds", "1" + "0" * 309), "gang-timeout-seconds must be at most 86400"),
    (pod("p").gpus(1).label("gpusched.io/gang", "g").annotate("gpusched.io/gang-size", "1" + "0" * 5000),
     "gang-size must be at most 10000"),
    (pod("p").gpus(1).label("gpusched.io/gang", "g").annotate("gpusched.io/gang-size", "١٢"),
     "gang-size must be a positive integer, got '١٢'"),
    (pod("p").gpus(1).label("gpusched.io/gang", "g").annotate("gpusched.io/gang-size", "10001"),
     "gang-size must be at most 10000, got '10001'"),
    (pod("p").gpus(1).policy("x" * 100_000), "gpusched.io/policy: 'xxxxxxxx"),
    (pod("p").share(500).annotate("gpusched.io/sharing", "y" * 100_000), "unknown sharing mode 'yyyy"),
    (pod("p" * 254).gpus(1), "metadata.name 'pppppppppppppppppppppppppppppppp'... (254 characters) is longer than 253"),
    (pod("p", namespace="n" * 10_000).gpus(1), "metadata.namespace 'nnnn"),
    (pod("p").gpus(1).label("gpusched.io/gang", "g\n").annotate("gpusched.io/gang-size", "2"), "not a valid name"),
    (pod("p").gpus(1).label("gpusched.io/team", "t" * 64), "label gpusched.io/team: 'tttt"),
], ids=["cpu-5000-digits", "gpu-huge-exponent", "memory-huge-exponent", "gang-timeout-huge", "gang-size-huge",
        "gang-size-unicode-digits", "gang-size-over-bound", "policy-huge", "sharing-huge", "name-long",
        "namespace-huge", "gang-name-newline", "team-long"])
def test_absurd_values_get_a_short_reason(builder, reason):
    with pytest.raises(InvalidRequest) as caught:
        builder.request()
    message = str(caught.value)
    assert reason in message and "\n" not in message and len(message) < 300


@pytest.mark.parametrize("priority", [2**31, -(2**31) - 1, 2**63 - 1, 1.5, True])
def test_priority_is_an_int32_as_the_api_says(priority):
    built = pod("p").gpus(1).build()
    built["spec"]["priority"] = priority
    with pytest.raises(InvalidRequest, match=r"spec\.priority must be an integer"):
        parse_pod(built)


def test_requests_that_add_up_past_int64_are_refused():
    # Each container's 9.2e15 CPUs fits int64 in millicores; three of them do not.
    built = pod("p").build()
    built["spec"]["containers"] = [{"name": f"c{i}", "resources": {"limits": {"cpu": "9223372036854775"}}}
                                   for i in range(3)]
    with pytest.raises(InvalidRequest, match=r"cpu: .* more than any node has"):
        parse_pod(built)


@settings(max_examples=150, deadline=None)
@given(size=st.text(max_size=30) | st.integers(-(10**30), 10**30).map(str),
       timeout=st.text(max_size=30) | st.integers(-(10**400), 10**400).map(str))
def test_gang_numbers_parse_to_their_bounds_or_are_refused(size, timeout):
    built = (pod("p").gpus(1).label("gpusched.io/gang", "g").annotate("gpusched.io/gang-size", size)
             .annotate("gpusched.io/gang-timeout-seconds", timeout).build())
    try:
        request = parse_pod(built)
    except InvalidRequest as e:
        assert "\n" not in str(e) and len(str(e)) < 300
        return
    assert request.gang is not None
    assert 1 <= request.gang.size <= MAX_GANG_SIZE and 1 <= request.gang.timeout_s <= MAX_GANG_TIMEOUT_S
