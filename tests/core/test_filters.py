"""The filter, node by node: every reason, and which map it lands in."""

import numpy as np
import pytest

from scheduler.core.engine import Engine
from scheduler.core.state import Grant
from scheduler.core.verdict import Reason
from tests.builders import node, pod

A100 = "NVIDIA-A100-SXM4-80GB"
T4 = "Tesla-T4"


def verdict(nodes, request, *, taken=()):
    """The filter's verdict on the first node, after `taken` (slot, milli, MiB) grants on it."""
    engine = Engine(nodes)
    for slot, milli, memory in taken:
        engine.state.apply(0, Grant((slot,), milli, (memory,), 0, 0))
    answer = engine.filter(request, [n.name for n in nodes])
    name = nodes[0].name
    if name in answer.passed:
        return "fits"
    if name in answer.unresolvable:
        return ("never", answer.unresolvable[name])
    return ("not now", answer.failed[name])


def msg(reason: Reason):
    return reason.message


CASES = {
    # id: (node, pod, taken, expected)
    "whole gpu fits": (node("n").gpus(2), pod("p").gpus(1), (), "fits"),
    "no gpus at all": (node("n"), pod("p").gpus(1), (), ("never", msg(Reason.NO_GPUS))),
    "model excluded": (node("n").gpus(2, model=T4), pod("p").gpus(1).models("A100*"), (),
                       ("never", msg(Reason.MODEL_EXCLUDED))),
    "model denied": (node("n").gpus(2, model=T4), pod("p").gpus(1).models("!T4"), (),
                     ("never", msg(Reason.MODEL_EXCLUDED))),
    "too few gpus in total": (node("n").gpus(4), pod("p").gpus(8), (), ("never", msg(Reason.TOO_FEW_GPUS))),
    "mig partitioned": (node("n").gpus(2, mig=True), pod("p").gpus(1), (), ("never", msg(Reason.ALL_MIG))),
    "unhealthy": (node("n").gpus(1, healthy=False).gpus(1), pod("p").gpus(2), (), ("never", msg(Reason.UNHEALTHY))),
    "whole gpu busy": (node("n").gpus(1), pod("p").gpus(1), ((0, 1000, 81920),),
                       ("not now", msg(Reason.NO_GPU_WITH_ROOM))),
    "partly used gpu is not whole": (node("n").gpus(1, sharing="time-slicing"), pod("p").gpus(1), ((0, 100, 0),),
                                     ("not now", msg(Reason.NO_GPU_WITH_ROOM))),
    "several whole gpus short": (node("n").gpus(4), pod("p").gpus(4), ((0, 1000, 81920),),
                                 ("not now", msg(Reason.INSUFFICIENT_WHOLE_GPUS))),
    "share on exclusive gpu": (node("n").gpus(2), pod("p").share(500), (), ("never", msg(Reason.NO_SHAREABLE_GPU))),
    "share on mps gpu": (node("n").gpus(2, model=T4, memory_mib=15360, sharing="mps"), pod("p").share(500), (), "fits"),
    "share on time-sliced gpu": (node("n").gpus(2, sharing="time-slicing"), pod("p").share(500), (), "fits"),
    "mps share needs mps": (node("n").gpus(2, sharing="time-slicing"), pod("p").share(500).mps(), (),
                            ("never", msg(Reason.NO_MPS_GPU))),
    "share fits beside another": (node("n").gpus(1, sharing="mps"), pod("p").share(500), ((0, 500, 0),), "fits"),
    "share does not fit": (node("n").gpus(1, sharing="mps"), pod("p").share(501), ((0, 500, 0),),
                           ("not now", msg(Reason.NO_GPU_WITH_ROOM))),
    "share memory too big for any gpu": (node("n").gpus(1, sharing="mps", memory_mib=15360),
                                         pod("p").share(100, memory_mib=16000), (),
                                         ("never", msg(Reason.GPU_TOO_SMALL))),
    "share memory taken": (node("n").gpus(1, sharing="mps", memory_mib=16000), pod("p").share(100, memory_mib=9000),
                           ((0, 100, 8000),), ("not now", msg(Reason.INSUFFICIENT_GPU_MEMORY))),
    "cpu capacity": (node("n").gpus(1).cpu(4000), pod("p").gpus(1).cpu("8"), (), ("never", msg(Reason.CPU_CAPACITY))),
    "memory capacity": (node("n").gpus(1).memory(1024), pod("p").gpus(1).memory("2Gi"), (),
                        ("never", msg(Reason.MEMORY_CAPACITY))),
    "node taken out of service": (node("n").gpus(1).unavailable("gpusched agent on node n silent for 3m"),
                                  pod("p").gpus(1), (), ("never", "gpusched agent on node n silent for 3m")),
    "cpu-only pod on cpu node": (node("n"), pod("p").cpu("2"), (), "fits"),
}


@pytest.mark.parametrize(("builder", "request_builder", "taken", "expected"), CASES.values(), ids=CASES.keys())
def test_filter_verdict(builder, request_builder, taken, expected):
    assert verdict([builder.build()], request_builder.request(), taken=taken) == expected


def test_whole_gpus_with_a_memory_floor():
    request = pod("p").gpus(1).build()
    request["spec"]["containers"][0]["resources"]["limits"]["gpusched.io/gpu-memory"] = "50000"
    from scheduler.core.request import parse_pod
    small = node("small").gpus(2, memory_mib=40960).build()
    big = node("big").gpus(2, memory_mib=81920).build()
    answer = Engine([small, big]).filter(parse_pod(request), ["small", "big"])
    assert answer.passed == ["big"]
    assert answer.unresolvable == {"small": Reason.GPU_TOO_SMALL.message}


def test_unknown_nodes_are_unresolvable_and_order_is_kept():
    engine = Engine([node("b").gpus(1).build(), node("a").gpus(1).build()])
    answer = engine.filter(pod("p").gpus(1).request(), ["a", "ghost", "b"])
    assert answer.passed == ["a", "b"]
    assert answer.unresolvable == {"ghost": Reason.UNKNOWN_NODE.message}


def test_heterogeneous_node_counts_only_allowed_models():
    mixed = node("mixed").gpus(2, model=A100).gpus(2, model=T4, memory_mib=15360).build()
    engine = Engine([mixed])
    assert engine.filter(pod("p").gpus(2).models("A100*").request(), ["mixed"]).passed == ["mixed"]
    answer = engine.filter(pod("p").gpus(3).models("A100*").request(), ["mixed"])
    assert answer.unresolvable == {"mixed": Reason.TOO_FEW_GPUS.message}


def test_reason_codes_partition_into_the_two_maps():
    for reason in Reason:
        if reason is not Reason.FITS:
            assert reason.unresolvable == (reason.value < 20)
    assert np.all([r.message for r in Reason])
