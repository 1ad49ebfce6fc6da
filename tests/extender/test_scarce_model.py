"""An unconstrained pod leaves the scarce GPU model to the pods that need it, once such pods are seen.

fgd-plus keeps a model free only where the workload gives a reason: pods tied to that model in the
workload M (the pods the extender has seen). With no such pod the H100 and A100 nodes tie and
kube-scheduler's own plugins decide; a blind preference for the plentiful model costs several
points of GPU on clusters where FGD's bins tie across pools (benchmarks/results/policies.md).
"""

import pytest

from simulator.extender_client import ExtenderClient
from tests.builders import pod
from tests.extender.conftest import EXAMPLES


@pytest.fixture
def cluster_path():
    return EXAMPLES / "mixed.yaml"


@pytest.fixture
def policy():
    return "fgd-plus"


async def scores(client: ExtenderClient, request: dict, nodes: list[str]) -> dict[str, int]:
    passed = (await client.filter(request, nodes))["NodeNames"]
    return {entry["Host"]: entry["Score"] for entry in await client.prioritize(request, passed)}


async def test_a_4_gpu_pod_prefers_a100_once_h100_only_pods_are_in_the_workload(server):
    service, url, _http = server
    nodes = list(service.engine.state.index)
    async with ExtenderClient(url) as client:
        unconstrained = pod("train").gpus(4).build()
        before = await scores(client, unconstrained, nodes)
        assert before["h100-0"] == max(before.values())

        h100_only = await client.schedule_one(pod("h100-job").gpus(1).models("NVIDIA-H100*").build(), nodes)
        assert h100_only.node == "h100-0"

        after = await scores(client, pod("train-2").gpus(4).build(), nodes)
        a100 = {name: score for name, score in after.items() if name.startswith("a100")}
        assert a100 and max(a100.values()) == 10
        assert after["h100-0"] < max(a100.values())
