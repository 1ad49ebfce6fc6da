"""Every example in deploy/examples, applied with `kubectl apply -k` and placed as its comments say.

The test plays only what the loopback cluster lacks: the Job controller and the Kubeflow training
operator (it creates their pods from the templates), and the ResourceQuota controller (it fills the
quota's status, without which the API server's quota admission refuses every pod in its namespace).
"""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.cluster.cluster import gpus_of, held_gpus, job_pods, node_object
from tests.cluster.controlplane import ROOT

pytestmark = pytest.mark.xdist_group("control-plane")

H100 = "NVIDIA-H100-80GB-HBM3"


def _h100_nodes():
    return [node_object(f"h100-{i}", model=H100, cpu="128", mem="2000Gi") for i in range(16)]


def _nodes():
    yield from (node_object(f"a100-{i}") for i in range(4))
    yield node_object("a100-mps", sharing="mps")
    yield node_object("a100-shared", sharing="time-slicing")
    yield node_object("t4-shared", model="Tesla-T4", memory_mib=15360, sharing="time-slicing", gpus=4)


def _apply_examples(cluster) -> list[dict]:
    rendered = cluster.plane.kubectl("kustomize", str(ROOT / "deploy/examples")).stdout
    first = cluster.plane.kubectl("apply", "-k", str(ROOT / "deploy/examples"), check=False)
    # The quota controller's part: status.hard and status.used, then the refused pod again.
    cluster.plane.kubectl("-n", "team-vision", "patch", "resourcequota", "gpus", "--subresource=status",
                          "--type=merge", "-p", '{"status": {"hard": {"requests.nvidia.com/gpu": "16", '
                          '"requests.gpusched.io/gpu-milli": "4000"}, "used": {"requests.nvidia.com/gpu": "0", '
                          '"requests.gpusched.io/gpu-milli": "0"}}}')
    if first.returncode != 0:
        assert "detector-train" in first.stderr, first.stderr
        cluster.plane.kubectl("apply", "-k", str(ROOT / "deploy/examples"))
    return [o for o in yaml.safe_load_all(rendered) if o]


def _operator_pods(objects: list[dict], cluster) -> list[dict]:
    """What the Job controller and the training operator would create."""
    pods = []
    for obj in objects:
        if obj["kind"] == "Job":
            job = cluster.plane.kubectl("-n", obj["metadata"]["namespace"], "get", "job", obj["metadata"]["name"],
                                        "-o", "yaml").stdout
            pods += job_pods(yaml.safe_load(job))
        elif obj["kind"] == "PyTorchJob":
            for role, spec in obj["spec"]["pytorchReplicaSpecs"].items():
                for index in range(spec["replicas"]):
                    pod = copy.deepcopy(spec["template"])
                    pod["metadata"].update(name=f"{obj['metadata']['name']}-{role.lower()}-{index}",
                                           namespace=obj["metadata"]["namespace"])
                    pod["spec"]["terminationGracePeriodSeconds"] = 0
                    pods.append({"apiVersion": "v1", "kind": "Pod", **pod})
    return pods


def test_every_example_is_placed_as_documented(cluster):
    # The 16 H100 nodes join for the pretraining job alone: 16 x 8 GPUs fits them exactly once, and
    # unconstrained examples may not crumble them first (they prefer H100s on a tie: issue 14).
    cluster.add_nodes(list(_nodes()))
    objects = _apply_examples(cluster)
    operator_pods = _operator_pods(objects, cluster)
    cluster.create_pods(p for p in operator_pods if not p["metadata"]["name"].startswith("llm-pretrain"))
    cluster.wait_bound("ml-demo", ["whole-gpus", "a100-or-h100", "allreduce-4-0", "bert-finetune-master-0"],
                       timeout=60)
    cluster.add_nodes(_h100_nodes())
    cluster.create_pods(p for p in operator_pods if p["metadata"]["name"].startswith("llm-pretrain"))
    plain = ["whole-gpus", "half-gpu", "mps-quarter", "a100-or-h100", "not-on-t4"]
    gang4 = [f"allreduce-4-{i}" for i in range(4)]
    pretrain = [f"llm-pretrain-{i}" for i in range(16)]
    bert = ["bert-finetune-master-0", "bert-finetune-worker-0", "bert-finetune-worker-1"]
    demo = cluster.wait_bound("ml-demo", plain + gang4 + pretrain + bert, timeout=90)
    vision = cluster.wait_bound("team-vision", ["detector-train"], timeout=30)

    def on(pod):
        return pod["spec"]["nodeName"]

    def annotations(pod):
        return pod["metadata"]["annotations"]

    assert len(gpus_of(demo["whole-gpus"])) == 2
    assert annotations(demo["half-gpu"])["gpusched.io/gpu-milli"] == "500"
    assert annotations(demo["half-gpu"])["gpusched.io/gpu-memory"] == "20480"
    assert on(demo["half-gpu"]) in ("a100-mps", "a100-shared", "t4-shared")
    assert on(demo["mps-quarter"]) == "a100-mps"
    assert "gpusched.io/mps-thread-pct" in annotations(demo["mps-quarter"])
    assert on(demo["a100-or-h100"]).startswith("a100")
    assert on(demo["not-on-t4"]) in ("a100-mps", "a100-shared")
    assert len({on(demo[n]) for n in pretrain}) == 16 and all(on(demo[n]).startswith("h100") for n in pretrain)
    assert all(len(gpus_of(demo[n])) == 2 for n in gang4)
    assert all(len(gpus_of(demo[n])) == 4 for n in bert)
    assert len(gpus_of(vision["detector-train"])) == 4
    pods = list(demo.values()) + list(vision.values())
    assert all(len(holders) == 1 or _all_shares(holders, demo) for holders in held_gpus(pods).values())
    for pod in pods:  # the record names the node the Binding went to
        assert annotations(pod)["gpusched.io/node"] == on(pod)


def _all_shares(holders: list[str], pods: dict) -> bool:
    return all("gpusched.io/gpu-milli" in pods[h]["metadata"]["annotations"] for h in holders if h in pods)
