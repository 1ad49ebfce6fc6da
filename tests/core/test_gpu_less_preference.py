"""A pod that asks for no GPU lands on a node without GPUs when one fits, under every policy."""

import numpy as np
import pytest

from scheduler.core.engine import Engine, EngineSettings
from scheduler.core.policies import POLICIES
from scheduler.extender.wire import scale_array
from tests.builders import node, pod

CLUSTER = [
    node("h100").gpus(8, model="NVIDIA-H100-80GB-HBM3").cpu(192_000).build(),
    node("a100").gpus(8).cpu(128_000).build(),
    node("cpu").cpu(64_000).build(),
]
NAMES = [n.name for n in CLUSTER]


def scaled(policy: str, request) -> dict[str, int]:
    engine = Engine(CLUSTER, settings=EngineSettings(policy=policy))
    engine.filter(request, NAMES)
    return dict(zip(NAMES, scale_array(engine.score_array(request, NAMES), POLICIES[policy].span).tolist(),
                    strict=True))


@pytest.mark.parametrize("policy", sorted(set(POLICIES) - {"random"}))
def test_a_cpu_only_pod_prefers_the_gpu_less_node_by_half_the_range(policy):
    """(random places by its draw alone, worth its whole span, by design: the paper's baseline.)"""
    result = scaled(policy, pod("web").cpu("8").request())
    assert result["cpu"] == 10
    assert result["h100"] <= 5 and result["a100"] <= 5


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_the_preference_adds_half_the_span_to_gpu_less_nodes_only(policy):
    engine = Engine(CLUSTER, settings=EngineSettings(policy=policy))
    request = pod("web").cpu("8").request()
    rows = np.arange(len(CLUSTER))
    _, fit = engine.fit_rows(request, rows)
    policy_scores = POLICIES[policy].score(engine.state, request, rows, fit.slot_fit, engine._ctx())
    added = engine.score_rows(request, rows, fit.slot_fit) - policy_scores
    assert added.tolist() == [0.0, 0.0, POLICIES[policy].span / 2]


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_gpu_pods_score_as_their_policy_says(policy):
    engine = Engine(CLUSTER, settings=EngineSettings(policy=policy))
    request = pod("train").gpus(2).request()
    engine.filter(request, NAMES)
    rows = np.array([0, 1])
    _, fit = engine.fit_rows(request, rows)
    policy_scores = POLICIES[policy].score(engine.state, request, rows, fit.slot_fit, engine._ctx())
    assert engine.score_array(request, NAMES[:2]).tolist() == policy_scores.tolist()
