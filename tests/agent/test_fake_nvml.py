"""The fake NVML: the YAML describes what NVML would say, and mistakes are one clear line."""

from pathlib import Path

import pytest

from scheduler.agent.fake_nvml import FakeNvml, FakeNvmlError
from scheduler.agent.nvml_source import NvmlError, NvmlUnavailable
from scheduler.agent.readings import ComputeMode, XidEvent
from tests.agent.builders import fake, gpu, node, uuid_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "fake-nvml"


def test_dgx_a100_example_describes_eight_a100s_on_one_nvswitch_fabric():
    source = FakeNvml.from_file(EXAMPLES / "dgx-a100.yaml")
    source.open()
    reading = source.read()
    assert [g.index for g in reading.gpus] == list(range(8))
    assert {g.name for g in reading.gpus} == {"NVIDIA A100-SXM4-80GB"}
    assert {g.memory_total_mib for g in reading.gpus} == {81920}
    assert len({g.uuid for g in reading.gpus}) == 8
    for g in reading.gpus:
        assert len(g.nvlinks) == 12  # A100: 12 NVLinks, two to each of six NVSwitches
        assert {link.remote_kind for link in g.nvlinks} == {"switch"}
    assert reading.driver_version == "550.54.15" and reading.cuda_version == "12.4"


def test_t4_mps_example_runs_the_mps_daemon_in_exclusive_process_mode():
    source = FakeNvml.from_file(EXAMPLES / "t4-mps.yaml")
    source.open()
    reading = source.read()
    assert source.mps_daemon is True
    assert [(g.name, g.memory_total_mib, g.compute_mode) for g in reading.gpus] == [
        ("Tesla T4", 15360, ComputeMode.EXCLUSIVE_PROCESS)] * 2


def test_script_applies_changes_after_the_given_number_of_reads():
    source = fake(gpu(0), gpu(1), script=[
        {"afterReads": 2, "xid": {"gpu": 1, "xid": 79}},
        {"afterReads": 2, "set": {"gpu": 1, "lost": True}},
        {"afterReads": 3, "set": {"gpu": 1, "lost": False}},
    ])
    assert source.wait_events(0) == []
    assert not source.read().gpus[1].lost          # read 1
    assert not source.read().gpus[1].lost          # read 2: the script step runs after it
    assert source.wait_events(0) == [XidEvent(uuid=uuid_of(1), xid=79)]
    lost = source.read().gpus[1]                   # read 3
    assert lost.lost and lost.uuid == uuid_of(1) and lost.processes == ()
    assert not source.read().gpus[1].lost          # read 4


def test_update_validates_like_the_file():
    source = fake(gpu(0))
    source.update(0, ecc={"uncorrectedVolatile": 2})
    assert source.read().gpus[0].counters.ecc_uncorrected_volatile == 2
    with pytest.raises(FakeNvmlError, match="'memoryMiB' must be an integer"):
        source.update(0, memoryMiB="lots")


def test_injected_read_failures_and_open_errors_look_like_nvml_errors():
    source = fake(gpu(0))
    source.fail_reads(1, "NVML: Unknown Error")
    with pytest.raises(NvmlError, match="Unknown Error"):
        source.read()
    assert source.read().gpus[0].index == 0
    with pytest.raises(NvmlUnavailable, match="Driver Not Loaded"):
        FakeNvml(node(gpu(0), openError="NVML: Driver Not Loaded")).open()


def test_waiting_without_events_sleeps_the_whole_timeout():
    slept = []
    source = FakeNvml(node(gpu(0)), sleep=slept.append)
    source.open()
    assert source.wait_events(2.5) == []
    assert slept == [2.5]
    source.inject_xid(0, 48)
    assert source.wait_events(2.5) == [XidEvent(uuid=uuid_of(0), xid=48)]
    assert slept == [2.5]  # an event is there: no waiting


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"gpus": []}, "'gpus' must be a non-empty list", id="no-gpus"),
    pytest.param(node(gpu(0, memoryMib=1)), "unknown field 'memoryMib'", id="typo"),
    pytest.param(node(gpu(0), gpu(2)), "GPU indices must be 0..1, got [0, 2]", id="index-gap"),
    pytest.param(node(gpu(0), gpu(1, uuid=uuid_of(0))), "duplicate GPU UUIDs", id="duplicate-uuid"),
    pytest.param(node(gpu(0, computeMode="shared")), "unknown compute mode 'shared'", id="compute-mode"),
    pytest.param(node(gpu(0, nvlinks=[{"link": 0, "remote": "x", "remoteType": "bridge"}])),
                 "'remoteType' must be gpu, switch or cpu", id="link-type"),
    pytest.param(node(gpu(0, migDevices=[{"uuid": "GPU-1"}])), "must be a MIG UUID", id="mig-uuid"),
    pytest.param(node(gpu(0), script=[{"afterReads": 1, "xid": {"gpu": 5, "xid": 79}}]),
                 "no GPU with index 5", id="script-gpu"),
    pytest.param(node(gpu(0), script=[{"afterReads": 0, "set": {"gpu": 0}}]), "at least 1", id="script-time"),
    pytest.param(node(gpu(0), colour="green"), "unknown field 'colour'", id="top-level-typo"),
])
def test_mistakes_are_one_line_naming_the_field(spec, message):
    with pytest.raises(FakeNvmlError) as err:
        FakeNvml(spec, where="node.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("node.yaml")
    assert "\n" not in str(err.value)


def test_unreadable_file_and_bad_yaml(tmp_path):
    with pytest.raises(FakeNvmlError, match="cannot read fake NVML file"):
        FakeNvml.from_file(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus: [\n")
    with pytest.raises(FakeNvmlError, match="not valid YAML"):
        FakeNvml.from_file(bad)


def test_process_owners_come_from_the_yaml():
    source = fake(gpu(0, processes=[{"pid": 7, "usedMiB": 10, "podUid": "u-1", "command": "python"},
                                    {"pid": 8}]))
    assert source.owner(7).pod_uid == "u-1" and source.owner(7).known
    assert not source.owner(8).known
    assert not source.owner(9).known
