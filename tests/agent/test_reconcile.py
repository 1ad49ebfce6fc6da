"""Books against reality: corrections, phantom allocations, unaccounted GPU use."""

import pytest

from scheduler.agent.podresources.client import ContainerDevices, PodDevices
from scheduler.agent.proc import ProcessOwner
from scheduler.agent.readings import GpuProcess, GpuReading, MigDevice
from scheduler.agent.reconcile import (
    PHANTOM,
    UNACCOUNTED,
    UNKNOWN_DEVICE,
    Correction,
    reconcile,
    resolve_device_id,
)
from scheduler.agent.records import PodRecord, record_from_pod
from tests.agent.builders import uuid_of

U = [uuid_of(i) for i in range(4)]


def gpus(*processes_by_index, mig=None):
    """Four GPUs; `processes_by_index[i]` is a list of PIDs on GPU i."""
    procs = list(processes_by_index) + [[]] * (4 - len(processes_by_index))
    return [GpuReading(index=i, uuid=U[i], name="NVIDIA A100-SXM4-80GB", memory_total_mib=81920,
                       processes=tuple(GpuProcess(pid) for pid in procs[i]),
                       mig_devices=tuple(mig or ()) if i == 3 else ()) for i in range(4)]


def whole(name, *recorded, count=None, uid=None):
    return PodRecord(namespace="ml", name=name, uid=uid or f"uid-{name}", whole_gpus=count or len(recorded) or 1,
                     recorded=tuple(recorded))


def share(name, *recorded, uid=None):
    return PodRecord(namespace="ml", name=name, uid=uid or f"uid-{name}", share=True, recorded=tuple(recorded))


def running(name, *ids, resource="nvidia.com/gpu", namespace="ml"):
    devices = (ContainerDevices("main", resource, tuple(ids)),) if ids else ()
    return PodDevices(namespace=namespace, name=name, devices=devices)


def kubelet(*pods):
    return {p.key: p for p in pods}


def run(*, records, kube, gpu_list=None, owners=None, now=1000.0, absent=None, grace=120.0):
    return reconcile(gpus=gpu_list or gpus(), records=records, kubelet=kube, owners=owners or {}, now=now,
                     absent_since=absent or {}, grace_s=grace)


# -- 1. whole-GPU pods -------------------------------------------------------------------------

@pytest.mark.parametrize(("recorded", "given", "expected"), [
    pytest.param((U[0], U[1]), (U[0], U[1]), None, id="books-right"),
    pytest.param((U[1], U[0]), (U[0], U[1]), None, id="same-set-other-order-is-no-change"),
    pytest.param((U[0], U[1]), (U[2], U[3]), (U[2], U[3]), id="plugin-chose-others"),
    pytest.param((U[0], U[1]), (U[3], U[1]), (U[1], U[3]), id="partly-different-kept-in-index-order"),
    pytest.param((), (U[2],), (U[2],), id="bound-by-another-scheduler-gets-a-record"),
    pytest.param(("GPU-of-another-node",), (U[2],), (U[2],), id="record-names-a-foreign-gpu"),
    pytest.param((U[0],), ("2",), (U[2],), id="device-id-strategy-index"),
    pytest.param((U[0],), (f"{U[1]}::3",), (U[1],), id="time-slicing-replica"),
])
def test_whole_gpu_records_follow_the_kubelet(recorded, given, expected):
    result = run(records=[whole("train", *recorded, count=len(given))], kube=kubelet(running("train", *given)))
    if expected is None:
        assert result.corrections == ()
    else:
        assert result.corrections == (Correction("ml", "train", tuple(recorded), expected),)
        assert result.corrections[0].value == ",".join(expected)
    assert result.findings == ()


def test_shares_are_never_corrected_from_the_kubelet():
    # A share appears in pod-resources without devices: nothing to compare there.
    result = run(records=[share("notebook", U[0])], kube=kubelet(running("notebook")))
    assert result.corrections == () and result.findings == ()


def test_an_unknown_device_id_is_reported_not_guessed():
    result = run(records=[whole("train", U[0])], kube=kubelet(running("train", "GPU-nope")))
    assert result.corrections == ()
    assert [(f.kind, f.message) for f in result.findings] == [
        (UNKNOWN_DEVICE, "pod ml/train was given device 'GPU-nope', which is no GPU NVML reports on this node")]


def test_mig_single_strategy_ids_map_to_the_parent_gpu():
    mig = [MigDevice(uuid="MIG-abc", profile="1g.10gb", memory_mib=9728, gpu_instance=1, compute_instance=0)]
    assert resolve_device_id("MIG-abc", gpus(mig=mig)) == U[3]
    assert resolve_device_id("7", gpus()) is None


def test_other_resources_do_not_count_as_gpus():
    result = run(records=[whole("train", U[0])],
                 kube=kubelet(running("train", "MIG-abc", resource="nvidia.com/mig-1g.10gb")))
    assert result.corrections == ()


# -- 2. phantom allocations ----------------------------------------------------------------------

def test_a_recorded_pod_the_kubelet_does_not_run_is_a_phantom_after_the_grace():
    records = [whole("gone", U[1], U[2])]
    first = run(records=records, kube=kubelet(), now=1000)
    assert first.findings == ()  # maybe bound a moment ago: not admitted yet
    assert first.absent_since == {"ml/gone": 1000}
    later = run(records=records, kube=kubelet(), now=1130, absent=first.absent_since)
    assert [(f.kind, f.key, f.message) for f in later.findings] == [
        (PHANTOM, "phantom-allocation/ml/gone",
         "pod ml/gone holds GPU 1, GPU 2 in its record but the kubelet does not run it")]
    assert later.count(PHANTOM) == 1
    assert later.absent_since == {"ml/gone": 1000}


def test_a_pod_that_shows_up_within_the_grace_was_never_a_phantom():
    records = [whole("slow", U[0])]
    first = run(records=records, kube=kubelet(), now=1000)
    back = run(records=records, kube=kubelet(running("slow", U[0])), now=1050, absent=first.absent_since)
    assert back.findings == () and back.absent_since == {}
    again = run(records=records, kube=kubelet(), now=1300, absent=back.absent_since)
    assert again.findings == ()  # absent again: the grace starts over


def test_without_the_kubelet_nothing_is_a_phantom_and_nothing_is_corrected():
    result = run(records=[whole("train", U[0])], kube=None, now=10_000, absent={"ml/train": 0})
    assert result.corrections == () and result.findings == () and result.absent_since == {}


def test_a_pod_without_a_record_is_no_phantom():
    result = run(records=[whole("unrecorded", count=1)], kube=kubelet(), now=10_000, absent={"ml/unrecorded": 0})
    assert result.findings == ()


# -- 3. unaccounted GPU use ----------------------------------------------------------------------

def test_processes_of_recorded_pods_on_their_gpus_are_explained():
    owners = {10: ProcessOwner("uid-train", "python"), 11: ProcessOwner("uid-nb", "python")}
    result = run(records=[whole("train", U[0]), share("nb", U[1])], kube=kubelet(running("train", U[0]), running("nb")),
                 gpu_list=gpus([10], [11]), owners=owners)
    assert result.findings == ()


def test_a_host_process_on_a_gpu_is_unaccounted():
    result = run(records=[], kube=kubelet(), gpu_list=gpus([], [], [4242]), owners={4242: ProcessOwner("", "python3")})
    (finding,) = result.findings
    assert finding.kind == UNACCOUNTED and finding.gpu == U[2] and finding.key == f"unaccounted-gpu-use/{U[2]}"
    assert finding.message == (f"GPU 2 ({U[2]}) runs 1 process(es) no record explains: "
                               "pid 4242 (python3) runs outside any pod")


def test_a_share_running_on_another_gpu_than_its_record_is_unaccounted_there():
    result = run(records=[share("nb", U[1])], kube=kubelet(running("nb")), gpu_list=gpus([], [], [77]),
                 owners={77: ProcessOwner("uid-nb", "python")})
    (finding,) = result.findings
    assert finding.gpu == U[2]
    assert finding.message.endswith("pid 77 (python) of pod ml/nb, whose record says GPU 1")


def test_the_kubelet_allocation_explains_a_whole_gpu_pod_before_its_record_is_corrected():
    result = run(records=[whole("train", U[0])], kube=kubelet(running("train", U[3])), gpu_list=gpus([], [], [], [5]),
                 owners={5: ProcessOwner("uid-train", "python")})
    assert [f.kind for f in result.findings] == []
    assert result.corrections == (Correction("ml", "train", (U[0],), (U[3],)),)


def test_a_pod_with_no_gpu_record_using_a_gpu_is_unaccounted():
    result = run(records=[], kube=kubelet(), gpu_list=gpus([9]), owners={9: ProcessOwner("uid-sneaky", "python")})
    assert result.findings[0].message.endswith("pid 9 (python) of pod uid uid-sneaky, which has no GPU record here")


def test_infrastructure_processes_need_no_record():
    owners = {1: ProcessOwner("uid-mps-daemon", "nvidia-cuda-mps-server"), 2: ProcessOwner("", "nv-hostengine")}
    result = run(records=[], kube=kubelet(), gpu_list=gpus([1, 2]), owners=owners)
    assert result.findings == ()


def test_unknown_owners_are_explained_by_any_claim_on_the_gpu():
    result = run(records=[share("nb", U[0])], kube=kubelet(running("nb")), gpu_list=gpus([1], [2]), owners={})
    (finding,) = result.findings
    assert finding.gpu == U[1] and finding.message.endswith("pid 2 (owner unknown) on a GPU no pod claims")


def test_many_strays_on_one_gpu_make_one_finding_listing_a_few():
    pids = list(range(100, 108))
    result = run(records=[], kube=kubelet(), gpu_list=gpus(pids), owners={p: ProcessOwner("", "x") for p in pids})
    (finding,) = result.findings
    assert "runs 8 process(es)" in finding.message and finding.message.endswith("; and 3 more")


# -- records from API objects --------------------------------------------------------------------

def _pod(phase="Running", annotations=None, gpus_per_container=(1,)):
    return {"metadata": {"namespace": "ml", "name": "p", "uid": "u1", "annotations": annotations or {}},
            "spec": {"containers": [{"name": f"c{i}", "resources": {"limits": {"nvidia.com/gpu": str(n)}}}
                                    for i, n in enumerate(gpus_per_container)]},
            "status": {"phase": phase}}


@pytest.mark.parametrize(("pod", "expected"), [
    pytest.param(_pod(annotations={"gpusched.io/gpus": f"{U[0]},{U[1]}"}, gpus_per_container=(1, 1)),
                 PodRecord("ml", "p", "u1", whole_gpus=2, recorded=(U[0], U[1])), id="whole"),
    pytest.param(_pod(annotations={"gpusched.io/gpus": U[0], "gpusched.io/gpu-milli": "250"}, gpus_per_container=()),
                 PodRecord("ml", "p", "u1", share=True, recorded=(U[0],)), id="share"),
    pytest.param(_pod(gpus_per_container=(2,)), PodRecord("ml", "p", "u1", whole_gpus=2), id="unrecorded-whole"),
    pytest.param(_pod(gpus_per_container=()), None, id="no-gpu"),
    pytest.param(_pod(phase="Succeeded", annotations={"gpusched.io/gpus": U[0]}), None, id="finished"),
    pytest.param(_pod(phase="Pending", annotations={"gpusched.io/gpus": U[0]}),
                 PodRecord("ml", "p", "u1", whole_gpus=1, recorded=(U[0],)), id="pending-counts"),
])
def test_record_from_pod(pod, expected):
    assert record_from_pod(pod) == expected
