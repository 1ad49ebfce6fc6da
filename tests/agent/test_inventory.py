"""From readings to the node annotation: model names, NVLink peers, MIG, sharing mode."""

import json

import pytest

from scheduler.agent.health import Condition, GpuHealth
from scheduler.agent.inventory import build_entries, encode, gfd_product, normalise_bus_id, nvlink_peers
from scheduler.agent.readings import ComputeMode, GpuReading, NvLink
from scheduler.core.model import Sharing
from scheduler.core.nodeinfo import gpus_from_list
from tests.agent.builders import bus_of, fake, gpu, uuid_of


@pytest.mark.parametrize(("nvml_name", "product"), [
    ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),
    ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
    ("Tesla T4", "Tesla-T4"),
    ("Tesla V100-SXM2-16GB", "Tesla-V100-SXM2-16GB"),
    ("NVIDIA GeForce RTX 4090", "NVIDIA-GeForce-RTX-4090"),
    ("NVIDIA L40S", "NVIDIA-L40S"),
])
def test_model_is_what_gfd_writes_as_gpu_product(nvml_name, product):
    assert gfd_product(nvml_name) == product


@pytest.mark.parametrize(("raw", "canonical"), [
    ("00000000:07:00.0", "00000000:07:00.0"),
    ("0000:07:00.0", "00000000:07:00.0"),
    ("00000000:BD:00.0", "00000000:bd:00.0"),
    ("0001:0a:1f.3", "00000001:0a:1f.3"),
    ("not a bus id", "not a bus id"),
])
def test_bus_ids_compare_in_one_form(raw, canonical):
    assert normalise_bus_id(raw) == canonical


def _reading(index, *links):
    return GpuReading(index=index, uuid=uuid_of(index), name="x", memory_total_mib=1, pci_bus_id=bus_of(index),
                      nvlinks=tuple(links))


def _to(index, link=0, active=True, kind=""):
    # The far end written the way lspci would, to show that the forms are reconciled.
    return NvLink(link=link, active=active, remote_bus_id=bus_of(index).lower()[4:], remote_kind=kind)


SWITCH_A, SWITCH_B = "00000000:C4:00.0", "00000000:C5:00.0"


@pytest.mark.parametrize(("gpus", "expected"), [
    pytest.param([_reading(0), _reading(1)], {0: (), 1: ()}, id="no-nvlink"),
    pytest.param([_reading(0, _to(1, kind="gpu")), _reading(1, _to(0, kind="gpu"))], {0: (1,), 1: (0,)},
                 id="bridge-pair"),
    pytest.param([_reading(0, _to(1), _to(1, link=1), _to(2, link=2)), _reading(1, _to(0)), _reading(2, _to(0)),
                  _reading(3)], {0: (1, 2), 1: (0,), 2: (0,), 3: ()}, id="direct-links-kind-unknown"),
    pytest.param([_reading(0, _to(1, active=False)), _reading(1, _to(0, active=False))], {0: (), 1: ()},
                 id="inactive-links-reach-nothing"),
    pytest.param([_reading(i, NvLink(0, True, SWITCH_A, "switch"), NvLink(1, True, SWITCH_B, "switch"))
                  for i in range(4)], {i: tuple(j for j in range(4) if j != i) for i in range(4)},
                 id="nvswitch-all-to-all"),
    pytest.param([_reading(0, NvLink(0, True, SWITCH_A, "")), _reading(1, NvLink(0, True, SWITCH_A, "")),
                  _reading(2, NvLink(0, True, "00000000:C9:00.0", ""))], {0: (1,), 1: (0,), 2: ()},
                 id="unknown-far-end-shared-by-two-is-a-switch"),
    pytest.param([_reading(0, NvLink(0, True, SWITCH_A, "switch")), _reading(1, NvLink(0, False, SWITCH_A, "switch"))],
                 {0: (), 1: ()}, id="switch-link-down"),
    pytest.param([_reading(0, _to(0, kind="gpu"))], {0: ()}, id="never-its-own-peer"),
])
def test_nvlink_peers(gpus, expected):
    assert nvlink_peers(gpus) == expected


def _entries(source, *, health=None, mps=None, label=""):
    return build_entries(source.read(), health=health or {}, mps_daemon=source.mps_daemon if mps is None else mps,
                         strategy_label=label)


@pytest.mark.parametrize(("mode", "mps", "label", "mig", "sharing"), [
    pytest.param("default", False, "", False, "exclusive", id="plain"),
    pytest.param("exclusive-process", True, "", False, "mps", id="mps-daemon-and-exclusive-process"),
    pytest.param("default", True, "", False, "exclusive", id="daemon-but-default-mode"),
    pytest.param("exclusive-process", False, "", False, "exclusive", id="mode-but-no-daemon"),
    pytest.param("exclusive-process", False, "mps", False, "exclusive", id="label-mps-without-daemon"),
    pytest.param("default", False, "time-slicing", False, "time-slicing", id="device-plugin-time-slicing"),
    pytest.param("exclusive-process", True, "time-slicing", False, "mps", id="mps-wins-over-label"),
    pytest.param("default", False, "none", False, "exclusive", id="label-none"),
    pytest.param("exclusive-process", True, "time-slicing", True, "exclusive", id="mig-is-never-shared"),
])
def test_sharing_mode(mode, mps, label, mig, sharing):
    source = fake(gpu(0, computeMode=mode, migEnabled=mig))
    assert _entries(source, mps=mps, label=label)[0]["sharing"] == sharing


def test_dgx_example_annotation_reads_back_through_the_core():
    source = fake(*[gpu(i, nvlinks=[{"link": 0, "remote": SWITCH_A, "remoteType": "switch"}]) for i in range(8)])
    entries = _entries(source)
    gpus = gpus_from_list(json.loads(encode(entries)), where="annotation")
    assert [(g.index, g.uuid, g.model, g.memory_mib, g.sharing, g.healthy) for g in gpus] == [
        (i, uuid_of(i), "NVIDIA-A100-SXM4-80GB", 81920, Sharing.EXCLUSIVE, True) for i in range(8)]
    assert gpus[3].nvlink_peers == (0, 1, 2, 4, 5, 6, 7)


def test_mig_devices_and_placement_details_are_published():
    source = fake(gpu(0, migEnabled=True, numaNode=1, migDevices=[
        {"uuid": "MIG-aaaa", "profile": "3g.40gb", "memoryMiB": 40192, "gpuInstance": 1, "computeInstance": 0},
        {"uuid": "MIG-bbbb", "profile": "3g.40gb", "memoryMiB": 40192, "gpuInstance": 2, "computeInstance": 0},
    ]), gpu(1))
    first, second = _entries(source)
    assert first["migEnabled"] is True
    assert [m["uuid"] for m in first["migDevices"]] == ["MIG-aaaa", "MIG-bbbb"]
    assert first["migDevices"][0] == {"uuid": "MIG-aaaa", "profile": "3g.40gb", "memoryMiB": 40192,
                                      "gpuInstance": 1, "computeInstance": 0}
    assert first["numaNode"] == 1 and first["pciBusId"] == "00000000:10:00.0"
    assert "migDevices" not in second and "numaNode" not in second  # no NUMA affinity reported


def test_unhealthy_gpu_carries_its_reason():
    source = fake(gpu(0), gpu(1))
    sick = GpuHealth((Condition("xid-79", "XID 79 (GPU fell off the bus)"),))
    entries = _entries(source, health={uuid_of(1): sick})
    assert entries[0]["healthy"] is True and "unhealthyReason" not in entries[0]
    assert entries[1]["healthy"] is False
    assert entries[1]["unhealthyReason"] == "XID 79 (GPU fell off the bus)"


def test_encoding_is_stable():
    source = fake(gpu(0), gpu(1))
    assert encode(_entries(source)) == encode(_entries(source))
    assert ", " not in encode(_entries(source))


def test_compute_mode_is_reported():
    source = fake(gpu(0, computeMode="prohibited"))
    assert _entries(source)[0]["computeMode"] == ComputeMode.PROHIBITED.value
