"""`gpusched explain` on the workloads users write: Jobs, JobSets, PyTorchJobs and multi-document
files, expanded to the pods their controllers create and planned as the extender plans them (a
gang whole, everything else one pod after another); each node's score term by term; and the
user's mistakes in one line with exit code 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from scheduler.cli import main
from scheduler.cli.explain import SHIPPED_WEIGHT
from tests.cli.test_inputs import one_line

ROOT = Path(__file__).resolve().parents[2]
MIXED = ROOT / "examples" / "clusters" / "mixed.yaml"
GANG_4 = ROOT / "deploy" / "examples" / "gang-4.yaml"
PYTORCHJOB = ROOT / "deploy" / "examples" / "pytorchjob-podgroup.yaml"

# 4 + 2 free A100s: room for 3 of gang-4's members (2 GPUs each), never for all 4.
TOO_SMALL = """
nodes:
- {name: n0, cpuMilli: 64000, memoryMiB: 262144, gpus: {count: 4, model: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920}}
- {name: n1, cpuMilli: 64000, memoryMiB: 262144, gpus: {count: 2, model: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920}}
"""
ONE_NODE = """
nodes:
- {name: solo, cpuMilli: 64000, memoryMiB: 262144, gpus: {count: 4, model: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920}}
"""
SUFFIX = "[bcdfghjklmnpqrstvwxz2456789]{5}"


def explain(capsys, cluster: Path, workload: Path, *extra: str) -> dict:
    assert main(["explain", "--cluster", str(cluster), "--pod", str(workload), "--json", *extra]) == 0, \
        capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def placements(unit: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {p["pod"]: (p["node"], tuple(p["gpuIndices"])) for p in unit["pods"]}


def test_the_gang_4_job_is_placed_whole_where_it_fits(capsys):
    report = explain(capsys, MIXED, GANG_4)
    [unit] = report["units"]
    assert (unit["sources"], unit["gang"], unit["size"], unit["placed"]) == (
        ["Job ml-demo/allreduce-4"], "ml-demo/allreduce-4", 4, True)
    names = [p["pod"] for p in unit["pods"]]
    assert [re.fullmatch(rf"ml-demo/allreduce-4-{i}-{SUFFIX}", n) is not None for i, n in enumerate(names)] == [True] * 4
    # 4 members × 2 GPUs: one 8-GPU node holds them all (fewest nodes), each on its own pair
    where = placements(unit)
    assert len({node for node, _ in where.values()}) == 1
    gpus = [g for _, pair in where.values() for g in pair]
    assert sorted(gpus) == list(range(8))
    assert all(p["gpuMilli"] == 1000 and len(p["gpus"]) == 2 for p in unit["pods"])


def test_the_same_file_gives_the_same_names_and_placements(capsys):
    assert explain(capsys, MIXED, GANG_4) == explain(capsys, MIXED, GANG_4)


def test_the_gang_4_job_is_refused_whole_with_the_extenders_reason(tmp_path, capsys):
    report = explain(capsys, write(tmp_path, "small.yaml", TOO_SMALL), GANG_4)
    [unit] = report["units"]
    assert not unit["placed"]
    assert unit["reason"] == ("gang ml-demo/allreduce-4: 4 members do not fit together now: "
                              "room for 3 of 4 members that each need 2 whole GPUs on one node")
    assert [(p["node"], p["gpuIndices"], p["reason"]) for p in unit["pods"]] == [(None, [], unit["reason"])] * 4
    # every member alone would fit, which is why only the gang's reason can say what is wrong
    assert unit["fitting"] == 2


def test_a_refused_gang_holds_nothing_for_the_pods_after_it(tmp_path, capsys):
    # the gang needs 8 GPUs and the node has 4: refused; the Job after it still gets all 4
    after = GANG_4.read_text() + """---
apiVersion: batch/v1
kind: Job
metadata: {name: after, namespace: ml-demo}
spec:
  parallelism: 2
  template:
    spec:
      containers:
      - name: c
        resources: {limits: {nvidia.com/gpu: "2"}}
"""
    report = explain(capsys, write(tmp_path, "cluster.yaml", ONE_NODE), write(tmp_path, "w.yaml", after))
    gang, *singles = report["units"]
    assert not gang["placed"] and "room for 2 of 4 members" in gang["reason"]
    assert [u["sources"] for u in singles] == [["Job ml-demo/after"]] * 2
    taken = [placements(u) for u in singles]
    assert [re.fullmatch(rf"ml-demo/after-{SUFFIX}", name) is not None for t in taken for name in t] == [True, True]
    assert sorted(g for t in taken for _, pair in t.values() for g in pair) == [0, 1, 2, 3]


JOBSET = """
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata: {name: js, namespace: ml}
spec:
  replicatedJobs:
  - name: leader
    template:
      spec:
        template:
          metadata:
            labels: {gpusched.io/gang: js}
            annotations: {gpusched.io/gang-size: "5"}
          spec:
            containers: [{name: c, resources: {limits: {nvidia.com/gpu: "1", cpu: "2"}}}]
  - name: workers
    replicas: 2
    template:
      spec:
        parallelism: 2
        completions: 2
        template:
          metadata:
            labels: {gpusched.io/gang: js}
            annotations: {gpusched.io/gang-size: "5"}
          spec:
            containers: [{name: c, resources: {limits: {nvidia.com/gpu: "1", cpu: "2"}}}]
"""


def test_a_jobset_is_its_replicated_jobs_pods_planned_as_one_gang(tmp_path, capsys):
    report = explain(capsys, MIXED, write(tmp_path, "jobset.yaml", JOBSET))
    [unit] = report["units"]
    assert (unit["sources"], unit["gang"], unit["size"], unit["placed"]) == (["JobSet ml/js"], "ml/js", 5, True)
    # Jobs <jobset>-<replicatedJob>-<n>, Indexed: pods <job>-<index>-<suffix>
    stems = [re.sub(rf"-{SUFFIX}$", "", p["pod"]) for p in unit["pods"]]
    assert stems == ["ml/js-leader-0-0", "ml/js-workers-0-0", "ml/js-workers-0-1", "ml/js-workers-1-0",
                     "ml/js-workers-1-1"]
    where = placements(unit)
    assert len({node for node, _ in where.values()}) == 1  # 5 single-GPU members on one node
    assert len({gpu for _, gpus in where.values() for gpu in gpus}) == 5


def test_a_pytorchjob_takes_its_gang_size_from_the_podgroup_in_the_same_file(capsys):
    report = explain(capsys, MIXED, PYTORCHJOB)
    [unit] = report["units"]
    assert (unit["sources"], unit["gang"], unit["size"], unit["placed"]) == (
        ["PyTorchJob ml-demo/bert-finetune"], "ml-demo/bert-finetune", 3, True)
    where = placements(unit)
    assert list(where) == ["ml-demo/bert-finetune-master-0", "ml-demo/bert-finetune-worker-0",
                           "ml-demo/bert-finetune-worker-1"]
    # 3 × 4 GPUs: two 8-GPU nodes in one zone (fewest nodes, then fewest zones), no GPU given twice
    taken = [(node, gpu) for node, gpus in where.values() for gpu in gpus]
    assert len(taken) == len(set(taken)) == 12
    assert {node for node, _ in where.values()} == {"a100-0", "a100-1"}


def test_a_suspended_job_places_nothing_and_says_so(tmp_path, capsys):
    suspended = GANG_4.read_text().replace("  backoffLimit: 0\n", "  backoffLimit: 0\n  suspend: true\n")
    report = explain(capsys, MIXED, write(tmp_path, "suspended.yaml", suspended))
    assert (report["units"], report["noPods"]) == ([], ["Job ml-demo/allreduce-4"])


def test_a_pytorchjob_without_its_podgroup_waits_for_a_size(tmp_path, capsys):
    job_only = PYTORCHJOB.read_text().split("---\n", 1)[1]
    [unit] = explain(capsys, MIXED, write(tmp_path, "job.yaml", job_only))["units"]
    assert not unit["placed"]
    assert unit["reason"] == "gang ml-demo/bert-finetune: size unknown (no PodGroup with minMember known to gpusched)"


def pytorchjob_with_scheduling_policy(policy: str) -> str:
    """The example PyTorchJob without its PodGroup or the pods' group label, asking for gang
    scheduling the way a training-operator user does."""
    job = PYTORCHJOB.read_text().split("---\n", 1)[1]
    job = job.replace("        metadata:\n          labels:\n            scheduling.x-k8s.io/pod-group: bert-finetune\n", "")
    return job.replace("spec:\n  pytorchReplicaSpecs:", f"spec:\n  runPolicy:\n    schedulingPolicy: {policy}\n"
                       "  pytorchReplicaSpecs:")


@pytest.mark.parametrize(("policy", "size"), [("{minAvailable: 2}", 2), ("{}", 3)])
def test_a_pytorchjob_asking_for_gang_scheduling_gets_the_podgroup_its_operator_would_create(
        tmp_path, capsys, policy, size):
    text = pytorchjob_with_scheduling_policy(policy)
    assert "pod-group" not in text
    report = explain(capsys, MIXED, write(tmp_path, "job.yaml", text))
    assert report["inferredPodGroups"] == [{"podGroup": "ml-demo/bert-finetune", "minMember": size}]
    [unit] = report["units"]
    assert (unit["gang"], unit["size"], unit["placed"]) == ("ml-demo/bert-finetune", size, True)
    assert len(unit["pods"]) == 3


def test_a_podgroup_in_the_file_wins_over_the_one_inferred_from_the_pytorchjob(tmp_path, capsys):
    group = PYTORCHJOB.read_text().split("---\n", 1)[0]
    text = group + "---\n" + pytorchjob_with_scheduling_policy("{minAvailable: 2}")
    report = explain(capsys, MIXED, write(tmp_path, "job.yaml", text))
    assert report["inferredPodGroups"] == []
    [unit] = report["units"]
    assert (unit["gang"], unit["size"]) == ("ml-demo/bert-finetune", 3)


APPS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: infer, namespace: ml}
spec:
  replicas: 3
  template:
    spec:
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: "1"}}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: ml}
spec:
  replicas: 2
  template:
    spec:
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: "1"}}}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs, namespace: ml}
spec:
  template:
    spec:
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: "1"}}}]
"""


def test_deployments_statefulsets_and_replicasets_are_their_replicas_placed_one_after_another(tmp_path, capsys):
    report = explain(capsys, write(tmp_path, "cluster.yaml", ONE_NODE), write(tmp_path, "apps.yaml", APPS))
    units = report["units"]
    assert [u["gang"] for u in units] == [None] * 6
    names = [u["pods"][0]["pod"] for u in units]
    assert all(re.fullmatch(rf"ml/infer-{SUFFIX}{SUFFIX}-{SUFFIX}", n) for n in names[:3])
    assert len({n.rsplit("-", 1)[0] for n in names[:3]}) == 1  # one template hash for the Deployment's pods
    assert names[3:5] == ["ml/db-0", "ml/db-1"]
    assert re.fullmatch(rf"ml/rs-{SUFFIX}", names[5])
    # 6 one-GPU pods on a node of 4: the first four placed, each seeing the ones before it
    assert [u["placed"] for u in units] == [True] * 4 + [False] * 2
    taken = [g for u in units[:4] for _, gpus in placements(u).values() for g in gpus]
    assert sorted(taken) == [0, 1, 2, 3]


MULTI = """
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: ml}
spec: {clusterIP: None}
---
apiVersion: v1
kind: Pod
metadata: {name: first, namespace: ml}
spec:
  containers: [{name: c, resources: {limits: {nvidia.com/gpu: "2"}}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: pair, namespace: ml}
spec:
  parallelism: 2
  completions: 5
  completionMode: Indexed
  template:
    spec:
      containers: [{name: c, resources: {limits: {nvidia.com/gpu: "1"}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: last, namespace: ml}
spec:
  containers: [{name: c, resources: {limits: {nvidia.com/gpu: "1"}}}]
"""


def test_a_multi_document_file_places_pods_one_after_another(tmp_path, capsys):
    report = explain(capsys, write(tmp_path, "cluster.yaml", ONE_NODE), write(tmp_path, "multi.yaml", MULTI))
    assert report["skipped"] == ["Service ml/svc"]
    first, pair0, pair1, last = report["units"]
    assert [u["gang"] for u in report["units"]] == [None] * 4
    assert re.fullmatch(rf"ml/pair-0-{SUFFIX}", pair0["pods"][0]["pod"])  # parallelism 2 of 5 completions
    assert re.fullmatch(rf"ml/pair-1-{SUFFIX}", pair1["pods"][0]["pod"])
    # 2 + 1 + 1 GPUs fill the node's 4, each pod seeing the ones before it; the last finds none
    taken = [g for u in (first, pair0, pair1) for _, gpus in placements(u).values() for g in gpus]
    assert sorted(taken) == [0, 1, 2, 3]
    assert not last["placed"] and last["reason"] == "0/1 nodes are available: 1 no single GPU with enough free capacity"
    assert {n["node"]: n["fits"] for n in last["pods"][0]["nodes"]} == {"solo": False}


@pytest.mark.parametrize("policy", ["fgd-plus", "binpack", "bestfit", "packing"])
def test_the_shown_terms_add_up_to_the_raw_score_and_the_extender_scale(capsys, policy):
    report = explain(capsys, MIXED, GANG_4, "--policy", policy, "--top", "3")
    [unit] = report["units"]
    assert unit["policy"] == policy and len(unit["top"]) == 3
    for node in unit["top"]:
        total = 0.0
        for term in node["terms"]:
            total = total + term["weight"] * term["value"]
        assert total == node["rawScore"], node
        assert 0 <= node["score"] <= 10 and node["kubeSchedulerPoints"] == node["score"] * 5 * 10
    raws = [n["rawScore"] for n in unit["top"]]
    assert raws == sorted(raws, reverse=True) and unit["top"][0]["score"] == 10


def test_the_table_shows_placements_terms_and_how_kube_scheduler_weighs_them(capsys):
    assert main(["explain", "--cluster", str(MIXED), "--pod", str(GANG_4), "--top", "2", "--extender-weight", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as read, whatever the terminal's width
    assert "gang ml-demo/allreduce-4 of 4" in out and "placed: every member" in out
    assert re.search(rf"allreduce-4-0-{SUFFIX} a100-0 0, 1 2 whole GPUs", out), out
    assert "sigmoid(x / 1000)" in out and "10/10" in out
    assert "by 10 (MaxNodeScore 100 / MaxExtenderPriority 10) and by its weight 3" in out
    assert "gains 0..300" in out


@pytest.mark.parametrize("flag", ["--top", "--extender-weight"])
def test_counts_below_one_are_refused(capsys, flag):
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "--cluster", str(MIXED), "--pod", str(GANG_4), flag, "0"])
    assert exit_.value.code == 2
    one_line(capsys, flag, "must be a positive integer, got 0")


def test_an_unknown_policy_annotation_is_an_error_like_the_others(tmp_path, capsys):
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {gpusched.io/policy: tetris}}\n"
           "spec: {containers: [{name: c, resources: {limits: {nvidia.com/gpu: '1'}}}]}\n")
    assert main(["explain", "--cluster", str(MIXED), "--pod", str(write(tmp_path, "p.yaml", pod))]) == 2
    one_line(capsys, "Pod default/p", "gpusched.io/policy: unknown policy 'tetris'", "fgd-plus")


@pytest.mark.parametrize(("content", "fragments"), [
    ("kind: Job\nmetadata: {name: j}\nspec:\n  parallelism: [2\n", ["not valid YAML", "line 5"]),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nkind: CronJob\nmetadata: {name: d}\n",
     ["document 2 (line 5)", "unknown kind 'CronJob'", "Job", "PyTorchJob", "Deployment"]),
    ("kind: PyTorchJob\nmetadata: {name: t}\nspec:\n  runPolicy: {schedulingPolicy: {minAvailable: 0}}\n"
     "  pytorchReplicaSpecs: {Worker: {replicas: 2, template: {spec: {}}}}\n",
     ["PyTorchJob default/t: spec.runPolicy.schedulingPolicy", "minAvailable must be an integer from 1"]),
    ("kind: Job\nmetadata: {name: j}\nspec: {parallelism: 2}\n", ["Job default/j", "spec.template", "missing"]),
    ("kind: Job\nmetadata: {name: j}\nspec: {parallelism: -1, template: {spec: {}}}\n",
     ["Job default/j", "parallelism must be an integer from 0"]),
    ("kind: JobSet\nmetadata: {name: s}\nspec: {replicatedJobs: [{name: w}]}\n", ["JobSet default/s", "(w): template"]),
    ("kind: PyTorchJob\nmetadata: {name: t}\nspec: {}\n", ["PyTorchJob default/t", "pytorchReplicaSpecs"]),
    ("kind: PodGroup\nmetadata: {name: g}\nspec: {}\n", ["PodGroup default/g", "minMember is missing"]),
    ("kind: Service\nmetadata: {name: s}\n", ["no workload found", "Service default/s"]),
    ("- just\n- a list\n", ["document 1", "not an object"]),
    ("kind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers:\n"
     "      - {name: c, resources: {limits: {gpusched.io/gpu-milli: '1500'}}}\n",
     ["Job default/j, pod j-", "invalid GPU request", "between 1 and 999"]),
], ids=["yaml-line", "unknown-kind", "job-without-template", "negative-parallelism", "jobset-without-template",
        "pytorchjob-without-replicas", "pytorchjob-min-available-0", "podgroup-without-min-member", "nothing-to-place", "not-a-mapping",
        "invalid-request-in-a-template"])
def test_workload_file_mistakes_are_one_line(tmp_path, capsys, content, fragments):
    path = write(tmp_path, "w.yaml", content)
    assert main(["explain", "--cluster", str(MIXED), "--pod", str(path)]) == 2
    one_line(capsys, str(path), *fragments)


def test_the_default_extender_weight_is_the_one_deploy_ships():
    config = yaml.safe_load((ROOT / "deploy" / "base" / "gpu-scheduler-config.yaml").read_text())
    assert [e["weight"] for e in config["extenders"]] == [SHIPPED_WEIGHT]
