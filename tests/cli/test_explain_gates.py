"""`gpusched explain` answers as `gpusched serve --cluster` would: the cluster file's teams and
podGroups, and `--config` on top, gate the pod exactly as they gate the extender's filter.

Real processes, as a user runs them (tests/cli/test_cli.py's `gpusched`).
"""

from __future__ import annotations

import json

import pytest

from tests.builders import pod
from tests.cli.test_cli import gpusched, one_line_error

# Two 4-GPU nodes. vision is capped at 4 GPUs and already runs 2; PodGroup ml/bert needs 4 members.
CLUSTER = """
teams:
- {name: vision, guaranteed: 2, max: 4}
podGroups:
- {namespace: ml, name: bert, minMember: 4}
nodes:
- {name: a, cpuMilli: 64000, memoryMiB: 262144, gpus: {count: 4, model: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920}}
- {name: b, cpuMilli: 64000, memoryMiB: 262144, gpus: {count: 4, model: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920}}
pods:
- {namespace: vision, name: sweep-0, uid: sweep-0, node: a, team: vision, gpus: [GPU-a-0, GPU-a-1]}
"""
RAISED_MAX = "teams:\n- {name: vision, guaranteed: 2, max: 8}\n"
QUOTA = "team vision: 2 GPUs in use + 4 asked would exceed its max of 4"
GANG = "gang ml/bert: 1 of 4 members pending"


def explain(tmp_path, pod_json: dict, *extra: str) -> dict[str, dict]:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER)
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(json.dumps(pod_json))
    result = gpusched("explain", "--cluster", str(cluster), "--pod", str(pod_file), "--json", *extra)
    assert result.returncode == 0, result.stderr
    [unit] = json.loads(result.stdout)["units"]
    return {n["node"]: n for n in unit["pods"][0]["nodes"]}


@pytest.mark.parametrize(("pod_json", "reason"), [
    (pod("big", namespace="vision").gpus(4).build(), QUOTA),
    (pod("w0").gpus(1).label("scheduling.x-k8s.io/pod-group", "bert").build(), GANG),
    (pod("w0").gpus(1).label("gpusched.io/gang", "bert").annotate("gpusched.io/gang-size", "4").build(), GANG),
], ids=["team-max-from-the-file", "pod-group-from-the-file", "gang-annotation"])
def test_a_pod_the_gates_reject_says_why_on_every_node(tmp_path, pod_json, reason):
    nodes = explain(tmp_path, pod_json)
    assert {n: (v["fits"], v["reason"], v["unresolvable"]) for n, v in nodes.items()} == {
        "a": (False, reason, True), "b": (False, reason, True)}


def test_a_namespace_in_the_workload_file_names_its_pods_team(tmp_path):
    # research's pods are vision's by their Namespace's label: 2 GPUs in use + 4 would pass vision's max
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "research", "labels": {"gpusched.io/team": "vision"}}}
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER)
    workload = tmp_path / "w.yaml"
    workload.write_text(json.dumps(namespace) + "\n---\n" + json.dumps(pod("big", namespace="research").gpus(4).build()))
    result = gpusched("explain", "--cluster", str(cluster), "--pod", str(workload), "--json")
    assert result.returncode == 0, result.stderr
    [unit] = json.loads(result.stdout)["units"]
    assert not unit["placed"] and unit["reason"] == f"0/2 nodes are available: 2 {QUOTA}"


def test_config_wins_over_the_cluster_files_teams(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(RAISED_MAX)
    nodes = explain(tmp_path, pod("big", namespace="vision").gpus(4).build(), "--config", str(config))
    assert nodes["b"]["fits"] and len(nodes["b"]["gpus"]) == 4
    assert not nodes["a"]["fits"] and nodes["a"]["reason"] == "not enough free whole GPUs"


def test_a_pod_of_a_team_within_its_max_is_placed_as_before(tmp_path):
    nodes = explain(tmp_path, pod("small", namespace="vision").gpus(2).build())
    assert nodes["a"]["fits"] and nodes["b"]["fits"]
    assert {nodes["a"]["score"], nodes["b"]["score"]} <= set(range(11))


def test_a_whole_gang_in_one_pod_is_shown_on_its_reserved_node(tmp_path):
    # a gang of one: planned and reserved at once, so explain shows where it would go
    nodes = explain(tmp_path, pod("solo").gpus(4).label("gpusched.io/gang", "solo")
                    .annotate("gpusched.io/gang-size", "1").build())
    assert nodes["b"]["fits"] and nodes["b"]["gpus"] == [f"GPU-b-{i}" for i in range(4)]
    assert not nodes["a"]["fits"] and "reserved on b" in nodes["a"]["reason"]


def test_a_bad_config_is_one_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("teams: [{name: vision, guaranteed: lots}]\n")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER)
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text(json.dumps(pod("p").gpus(1).build()))
    one_line_error(gpusched("explain", "--cluster", str(cluster), "--pod", str(pod_file), "--config", str(config)),
                   str(config), "teams[0] (vision).guaranteed")
