"""Trace readers: openb pod lists, and the node lists of openb, PAI 2020 and spot 2026."""

from __future__ import annotations

import pytest

from scheduler.core.model import Sharing
from scheduler.core.request import parse_pod
from simulator.podspec import api_pod
from simulator.traces import TraceError
from simulator.traces.alibaba import load_pods
from simulator.traces.nodes import load_nodes
from tests.simulator.conftest import NODE_CSV, POD_CSV_HEADER, TRACES, openb


def test_pod_rows_become_requests(small_trace):
    pods = {p.name: p for p in load_pods(small_trace[1])}
    share = pods["p-01"].request(uid="u1")
    whole = pods["p-04"].request(uid="u4")
    constrained = pods["p-08"].request(uid="u8")
    cpu = pods["p-03"].request(uid="u3")
    assert (share.gpu_milli, share.gpus, whole.gpus, whole.gpu_milli, cpu.wants_gpu) == (460, 0, 2, 0, False)
    assert constrained.models.matches("V100M32") and not constrained.models.matches("T4")


@pytest.mark.parametrize(("row", "message"), [
    ("p-x,abc,1,1,1000,,LS,Running,0,1,0", "cpu_milli must be an integer, got 'abc'"),
    ("p-x,1000,1,2,500,,LS,Running,0,1,0", "a share (gpu_milli 500 < 1000) must ask for num_gpu 1, got 2"),
    ("p-x,1000,1,1,0,,LS,Running,0,1,0", "num_gpu is 1 but gpu_milli is 0 (expected 1..1000)"),
    ("p-x,1000,1,1,1000,,LS", "expected 11 fields, found 7"),
    ("p-x,1000,1,-1,1000,,LS,Running,0,1,0", "num_gpu must be 0..64, got -1"),
], ids=["not-a-number", "multi-gpu-share", "gpu-without-share", "short-row", "negative"])
def test_a_bad_pod_row_names_file_and_line(tmp_path, row, message):
    path = tmp_path / "pods.csv"
    path.write_text(POD_CSV_HEADER + "p-0,1000,1,0,0,,LS,Running,0,1,0\n" + row + "\n")
    with pytest.raises(TraceError) as error:
        load_pods(path)
    assert str(error.value) == f"{path}:3: {message}"


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(TraceError, match=r"nope\.csv: No such file"):
        load_pods(tmp_path / "nope.csv")


def test_openb_node_list(tmp_path):
    path = tmp_path / "nodes.csv"
    path.write_text(NODE_CSV)
    nodes = load_nodes(path)
    assert [(n.name, len(n.gpus), n.cpu_milli) for n in nodes][:3] == [("n-a", 8, 96000), ("n-b", 8, 96000),
                                                                       ("n-c", 2, 104000)]
    assert nodes[2].gpus[0].model == "T4" and nodes[2].gpus[0].sharing is Sharing.TIME_SLICING


@pytest.mark.parametrize(("folder", "name", "nodes", "gpus"), [
    ("alibaba-gpu-v2023/csv", "openb_node_list_all_node.csv", 1523, 6212),
    ("alibaba-pai-v2020", "pai_machine_spec.csv", 1897, 6742),
    ("alibaba-spot-gpu-v2026", "node_info_df.csv", 4278, 10412),
], ids=["openb", "pai2020", "spot2026"])
@pytest.mark.traces
def test_public_node_lists(folder, name, nodes, gpus):
    path = TRACES / folder / name
    if not path.is_file():
        pytest.skip(f"needs the public traces in ../shared/traces ({name} not found)")
    loaded = load_nodes(path)
    assert (len(loaded), sum(len(n.gpus) for n in loaded)) == (nodes, gpus)


@pytest.mark.traces
def test_every_openb_row_survives_the_trip_through_api_json():
    for pod in load_pods(openb("openb_pod_list_gpuspec33.csv"))[:2000]:
        request = pod.request(uid=f"openb/{pod.name}")
        assert parse_pod(api_pod(request)) == request


def test_generated_pods_survive_the_trip_through_api_json():
    # Gangs, teams, shares, MPS: what the simulator sends over HTTP parses back to the same request.
    from simulator.generator import generate

    _, scenario = generate(2)
    requests = [pod for job in scenario.jobs[:150] for pod in job.pods()]
    assert any(r.gang for r in requests) and any(r.sharing.value == "mps" for r in requests)
    for request in requests:
        assert parse_pod(api_pod(request)) == request
