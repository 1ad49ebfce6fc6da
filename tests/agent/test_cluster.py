"""The agent against a Kubernetes API (the fake API server, driven by the real `kubernetes` client)
and a kubelet (a real gRPC server on a unix socket): publishing, heartbeat, health events,
record corrections, phantom allocations, unaccounted GPU use, API failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes
import pytest

from scheduler.agent.exporter import AgentMetrics
from scheduler.agent.health import HealthSettings
from scheduler.agent.podresources.client import PodResourcesClient
from scheduler.agent.publisher import ClusterWriter, KubeError, NodePublisher
from scheduler.agent.runner import Agent, AgentSettings
from scheduler.core import contract as c
from scheduler.core.nodeinfo import node_from_api
from scheduler.core.staleness import heartbeat_reason
from tests.agent.builders import FakeClock, fake, gpu, uuid_of
from tests.agent.kubelet import FakeKubelet
from tests.agent.kubelet import pod as kubelet_pod

ROOT = Path(__file__).resolve().parents[2]
NODE = "gpu-1"
EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def kubelet():
    with FakeKubelet() as server:
        yield server


def put_node(kube_api, *, labels=None, annotations=None):
    kube_api.put({"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": NODE, "labels": labels or {}, "annotations": annotations or {}},
                  "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"}}})


def put_pod(kube_api, name, *, gpus=0, recorded=(), share=False, namespace="ml", phase="Running"):
    annotations = {c.ASSIGNED_GPUS_ANNOTATION: ",".join(recorded)} if recorded else {}
    if share:
        annotations[c.GRANTED_MILLI_ANNOTATION] = "500"
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    kube_api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    return kube_api.put({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
                         "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "x",
                                                                    "resources": resources}]},
                         "status": {"phase": phase}})


def make_agent(kube_api, source, clock, *, kubelet=None, reconcile=True, heartbeat=30.0, hold=60.0, grace=120.0):
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kube_api.configuration()))
    sink = NodePublisher(api, NODE, heartbeat_s=heartbeat)
    extra = {}
    if reconcile:
        extra = {"writer": ClusterWriter(api, NODE, node_uid=lambda: sink.uid),
                 "kubelet": PodResourcesClient(kubelet.socket) if kubelet else None}
    return Agent(AgentSettings(node=NODE, interval_s=10, health=HealthSettings(xid_hold_s=hold), phantom_grace_s=grace),
                 source=source, sink=sink, metrics=AgentMetrics(NODE), owners=source,
                 mps_probe=lambda: source.mps_daemon, clock=clock,
                 wall=lambda: EPOCH + timedelta(seconds=clock()), **extra)


def node_patches(kube_api):
    return [r for r in kube_api.requests if r.method == "PATCH" and r.path == f"/api/v1/nodes/{NODE}"]


def annotations(kube_api):
    return kube_api.get("nodes", None, NODE)["metadata"]["annotations"]


def events(kube_api, namespace="default"):
    return sorted((e["reason"], e["message"]) for e in kube_api.objects("events", namespace))


# -- publishing --------------------------------------------------------------------------------------

def test_published_annotation_is_what_the_extender_reads(kube_api):
    put_node(kube_api, annotations={"team.example.com/owner": "ml-infra"})
    clock = FakeClock(start=0)
    source = fake(*[gpu(i, nvlinks=[{"link": 0, "remote": "00000000:C4:00.0", "remoteType": "switch"}])
                    for i in range(8)], clock=clock)
    make_agent(kube_api, source, clock, reconcile=False).step()
    node = kube_api.get("nodes", None, NODE)
    notes = node["metadata"]["annotations"]
    parsed = node_from_api(node, gpu_annotation=json.loads(notes[c.NODE_GPUS_ANNOTATION]))
    assert [g.uuid for g in parsed.gpus] == [uuid_of(i) for i in range(8)]
    assert {g.model for g in parsed.gpus} == {"NVIDIA-A100-SXM4-80GB"}
    assert parsed.gpus[0].nvlink_peers == (1, 2, 3, 4, 5, 6, 7)
    assert notes[c.AGENT_HEARTBEAT_ANNOTATION] == "2024-05-01T12:00:00Z"
    assert notes[c.NODE_DRIVER_ANNOTATION] == "550.54.15" and notes[c.NODE_CUDA_ANNOTATION] == "12.4"
    assert notes["team.example.com/owner"] == "ml-infra"  # a merge patch of our keys only
    assert heartbeat_reason(notes[c.AGENT_HEARTBEAT_ANNOTATION], now=EPOCH + timedelta(seconds=30), node=NODE) == ""


def test_patches_only_changes_and_the_heartbeat_when_due(kube_api):
    put_node(kube_api)
    clock = FakeClock(start=0)
    source = fake(gpu(0), gpu(1), clock=clock)
    agent = make_agent(kube_api, source, clock, reconcile=False, heartbeat=30)
    agent.step()
    clock.advance(10)
    agent.step()
    clock.advance(10)
    agent.step()
    assert len(node_patches(kube_api)) == 1  # nothing changed, heartbeat not due yet
    clock.advance(10)
    agent.step()  # t=30: heartbeat due
    patches = node_patches(kube_api)
    assert len(patches) == 2
    assert patches[1].body == {"metadata": {"annotations": {c.AGENT_HEARTBEAT_ANNOTATION: "2024-05-01T12:00:30Z"}}}
    source.update(1, ecc={"uncorrectedVolatile": 1})
    clock.advance(1)
    agent.step()  # a change: written at once, heartbeat along
    patches = node_patches(kube_api)
    assert len(patches) == 3
    assert set(patches[2].body["metadata"]["annotations"]) == {c.NODE_GPUS_ANNOTATION, c.AGENT_HEARTBEAT_ANNOTATION}


def test_a_restarted_agent_does_not_rewrite_what_is_there(kube_api):
    put_node(kube_api)
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    make_agent(kube_api, source, clock, reconcile=False).step()
    restarted = make_agent(kube_api, source, clock, reconcile=False)
    restarted.step()
    patches = node_patches(kube_api)
    assert len(patches) == 2
    assert set(patches[1].body["metadata"]["annotations"]) == {c.AGENT_HEARTBEAT_ANNOTATION}


def test_time_slicing_comes_from_the_device_plugins_label(kube_api):
    put_node(kube_api, labels={c.SHARING_STRATEGY_LABEL: "time-slicing"})
    clock = FakeClock(start=0)
    make_agent(kube_api, fake(gpu(0), clock=clock), clock, reconcile=False).step()
    assert json.loads(annotations(kube_api)[c.NODE_GPUS_ANNOTATION])[0]["sharing"] == "time-slicing"


# -- health ------------------------------------------------------------------------------------------

def test_an_xid_unhealthy_gpu_is_published_with_its_reason_and_comes_back(kube_api, kubelet):
    put_node(kube_api)
    clock = FakeClock(start=0)
    source = fake(gpu(0), gpu(1), clock=clock)
    agent = make_agent(kube_api, source, clock, kubelet=kubelet, hold=60)
    agent.step()
    source.inject_xid(1, 79)
    agent.wait(10, lambda: False)  # the XID cuts the wait short
    agent.step()
    published = json.loads(annotations(kube_api)[c.NODE_GPUS_ANNOTATION])
    assert [g["healthy"] for g in published] == [True, False]
    assert published[1]["unhealthyReason"] == "XID 79 (GPU fell off the bus)"
    clock.advance(61)
    agent.step()
    assert [g["healthy"] for g in json.loads(annotations(kube_api)[c.NODE_GPUS_ANNOTATION])] == [True, True]
    assert events(kube_api) == [
        ("GPUHealthy", f"GPU 1 ({uuid_of(1)}) is healthy again"),
        ("GPUUnhealthy", f"GPU 1 ({uuid_of(1)}) is unhealthy: XID 79 (GPU fell off the bus)"),
    ]
    (event,) = [e for e in kube_api.objects("events", "default") if e["reason"] == "GPUUnhealthy"]
    assert event["involvedObject"]["kind"] == "Node" and event["involvedObject"]["name"] == NODE
    assert event["type"] == "Warning" and event["source"]["component"] == "gpusched-agent"


# -- reconciliation ----------------------------------------------------------------------------------

def test_a_whole_gpu_record_is_corrected_to_what_the_kubelet_gave(kube_api, kubelet):
    put_node(kube_api)
    put_pod(kube_api, "train", gpus=2, recorded=(uuid_of(0), uuid_of(1)))
    put_pod(kube_api, "right", gpus=1, recorded=(uuid_of(4),))
    kubelet.pods = [kubelet_pod("ml", "train", main={"nvidia.com/gpu": [uuid_of(3), uuid_of(2)]}),
                    kubelet_pod("ml", "right", main={"nvidia.com/gpu": [uuid_of(4)]})]
    clock = FakeClock(start=0)
    agent = make_agent(kube_api, fake(*[gpu(i) for i in range(8)], clock=clock), clock, kubelet=kubelet)
    agent.step()
    train = kube_api.get("pods", "ml", "train")
    assert train["metadata"]["annotations"][c.ASSIGNED_GPUS_ANNOTATION] == f"{uuid_of(2)},{uuid_of(3)}"
    assert kube_api.get("pods", "ml", "right")["metadata"]["annotations"][c.ASSIGNED_GPUS_ANNOTATION] == uuid_of(4)
    assert events(kube_api, "ml") == [("GPURecordCorrected", "gpusched.io/gpus corrected to the GPUs the kubelet "
                                       f"gave: {uuid_of(2)},{uuid_of(3)} (was {uuid_of(0)},{uuid_of(1)})")]
    assert agent.metrics.errors("pod-resources") == 0
    agent.step()  # now right: no second patch
    pod_patches = [r for r in kube_api.requests if r.method == "PATCH" and "/pods/" in r.path]
    assert len(pod_patches) == 1


def test_a_record_changed_meanwhile_is_not_overwritten(kube_api, kubelet):
    put_node(kube_api)
    put_pod(kube_api, "train", gpus=1, recorded=(uuid_of(0),))
    kubelet.pods = [kubelet_pod("ml", "train", main={"nvidia.com/gpu": [uuid_of(1)]})]
    clock = FakeClock(start=0)
    agent = make_agent(kube_api, fake(gpu(0), gpu(1), clock=clock), clock, kubelet=kubelet)
    stale = agent.writer.pods()
    put_pod(kube_api, "train", gpus=1, recorded=(uuid_of(1),))  # the extender rewrote it after our list
    rv = stale[0]["metadata"]["resourceVersion"]
    assert agent.writer.correct_record(namespace="ml", name="train", value=uuid_of(0), resource_version=rv) is False
    assert kube_api.get("pods", "ml", "train")["metadata"]["annotations"][c.ASSIGNED_GPUS_ANNOTATION] == uuid_of(1)


def test_phantom_allocation_is_reported_once_after_the_grace(kube_api, kubelet):
    put_node(kube_api)
    put_pod(kube_api, "gone", gpus=1, recorded=(uuid_of(1),))
    clock = FakeClock(start=0)
    agent = make_agent(kube_api, fake(gpu(0), gpu(1), clock=clock), clock, kubelet=kubelet, grace=120)
    agent.step()
    assert events(kube_api) == []
    clock.advance(130)
    agent.step()
    clock.advance(10)
    agent.step()
    assert events(kube_api) == [("PhantomGPUAllocation",
                                 "pod ml/gone holds GPU 1 in its record but the kubelet does not run it")]
    assert agent.reconciliation.count("phantom-allocation") == 1


def test_unaccounted_gpu_use_is_reported(kube_api, kubelet):
    put_node(kube_api)
    pod = put_pod(kube_api, "nb", share=True, recorded=(uuid_of(0),))
    kubelet.pods = [kubelet_pod("ml", "nb", main={})]
    clock = FakeClock(start=0)
    source = fake(gpu(0, processes=[{"pid": 10, "podUid": pod["metadata"]["uid"], "command": "python"}]),
                  gpu(1, processes=[{"pid": 4242, "command": "python3"}]), clock=clock)
    agent = make_agent(kube_api, source, clock, kubelet=kubelet)
    agent.step()
    assert events(kube_api) == [("UnaccountedGPUUse", f"GPU 1 ({uuid_of(1)}) runs 1 process(es) no record explains: "
                                 "pid 4242 (python3) runs outside any pod")]


def test_without_the_kubelet_the_agent_publishes_and_counts_the_error(kube_api, tmp_path):
    put_node(kube_api)
    put_pod(kube_api, "train", gpus=1, recorded=(uuid_of(0),))
    clock = FakeClock(start=0)
    agent = make_agent(kube_api, fake(gpu(0), clock=clock), clock)
    agent.kubelet = PodResourcesClient(tmp_path / "kubelet.sock")
    agent.step()
    clock.advance(1000)
    agent.step()
    assert agent.metrics.errors("pod-resources") == 2
    assert c.NODE_GPUS_ANNOTATION in annotations(kube_api)
    assert events(kube_api) == []  # no kubelet answer: nothing is a phantom


# -- the API server failing --------------------------------------------------------------------------

def test_api_errors_are_counted_and_retried(kube_api):
    put_node(kube_api)
    kube_api.fail_next("PATCH", f"/api/v1/nodes/{NODE}$", 500, count=2)
    clock = FakeClock(start=0)
    source = fake(gpu(0), clock=clock)
    agent = make_agent(kube_api, source, clock, reconcile=False)
    agent.run_forever(lambda: c.NODE_GPUS_ANNOTATION in annotations(kube_api))
    assert agent.metrics.errors("kube-api") == 2
    assert clock.slept[:2] == [1, 2]


def _kubeconfig(kube_api, tmp_path):
    return str(kube_api.kubeconfig(tmp_path / "kubeconfig"))


def test_cli_once_publishes(kube_api, tmp_path):
    put_node(kube_api)
    result = subprocess.run([sys.executable, "-m", "scheduler.cli", "agent", "--once", "--node", NODE,
                             "--kubeconfig", _kubeconfig(kube_api, tmp_path), "--no-reconcile",
                             "--fake-nvml", str(ROOT / "examples/fake-nvml/t4-mps.yaml")],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "published 2 GPU(s), 2 healthy" in result.stderr
    published = json.loads(annotations(kube_api)[c.NODE_GPUS_ANNOTATION])
    assert [g["sharing"] for g in published] == ["mps", "mps"]


def test_cli_once_wrong_node_is_one_line_and_exit_2(kube_api, tmp_path):
    result = subprocess.run([sys.executable, "-m", "scheduler.cli", "agent", "--once", "--node", "nope",
                             "--kubeconfig", _kubeconfig(kube_api, tmp_path),
                             "--fake-nvml", str(ROOT / "examples/fake-nvml/t4-mps.yaml")],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpusched agent: node 'nope' not found (set --node or NODE_NAME to this node's name)"]


def test_a_hung_api_server_times_out_instead_of_hanging_the_loop(kube_api):
    put_node(kube_api)
    # Hung, not slow: every attempt stalls (the client retries a timed-out GET three times).
    kube_api.fail_next("GET", f"/api/v1/nodes/{NODE}$", None, delay=3.0, count=10)
    api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kube_api.configuration()))
    publisher = NodePublisher(api, NODE, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(KubeError, match=f"reading node {NODE}"):
        publisher.fetch()
    assert time.monotonic() - started < 2.5  # four attempts of 0.3 s, not of 3 s
