"""The pod-resources client against a real gRPC server on a unix socket."""

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from scheduler.agent.podresources.client import ContainerDevices, PodResourcesClient, PodResourcesError
from tests.agent.kubelet import FakeKubelet, pod

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kubelet():
    with FakeKubelet() as server:
        yield server


def test_lists_the_devices_of_every_container(kubelet):
    kubelet.pods = [
        pod("ml", "train-0", main={"nvidia.com/gpu": ["GPU-b", "GPU-a"]}, sidecar={}),
        pod("ml", "two-containers", a={"nvidia.com/gpu": ["GPU-c"]}, b={"nvidia.com/gpu": ["GPU-d", "GPU-c"]}),
        pod("kube-system", "coredns-1", coredns={}),
        pod("ml", "mig", main={"nvidia.com/mig-1g.10gb": ["MIG-x"]}),
    ]
    client = PodResourcesClient(kubelet.socket)
    try:
        pods = client.list()
    finally:
        client.close()
    assert set(pods) == {"ml/train-0", "ml/two-containers", "kube-system/coredns-1", "ml/mig"}
    assert pods["ml/train-0"].devices == (ContainerDevices("main", "nvidia.com/gpu", ("GPU-b", "GPU-a")),)
    assert pods["ml/train-0"].device_ids("nvidia.com/gpu") == ("GPU-b", "GPU-a")  # the kubelet's order
    assert pods["ml/two-containers"].device_ids("nvidia.com/gpu") == ("GPU-c", "GPU-d")
    assert pods["kube-system/coredns-1"].devices == ()
    assert pods["ml/mig"].device_ids("nvidia.com/gpu") == ()
    assert pods["ml/mig"].device_ids("nvidia.com/mig-1g.10gb") == ("MIG-x",)


def test_the_channel_is_reused_and_sees_changes(kubelet):
    client = PodResourcesClient(kubelet.socket)
    assert client.list() == {}
    kubelet.pods = [pod("a", "b", c={"nvidia.com/gpu": ["GPU-1"]})]
    assert list(client.list()) == ["a/b"]
    assert kubelet.calls == 2
    client.close()
    client.close()  # idempotent


def test_a_missing_socket_is_one_clear_line(tmp_path):
    with pytest.raises(PodResourcesError, match=r"socket .*kubelet.sock not found \(mount /var/lib/kubelet"):
        PodResourcesClient(tmp_path / "kubelet.sock").list()


def test_a_failing_kubelet_is_one_clear_line(kubelet):
    kubelet.fail_with = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(PodResourcesError) as err:
        PodResourcesClient(kubelet.socket, timeout_s=5).list()
    assert "UNAVAILABLE" in str(err.value) and "injected failure" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_dead_socket_is_an_error_not_a_hang(tmp_path):
    dead = Path("/tmp") / f"dead-{tmp_path.name[:20]}.sock"
    dead.touch()  # exists, but nobody listens
    try:
        with pytest.raises(PodResourcesError, match="UNAVAILABLE"):
            PodResourcesClient(dead, timeout_s=2).list()
    finally:
        dead.unlink()


def test_committed_gencode_matches_the_proto(tmp_path):
    """`make podresources` output is committed; regenerating must give the same modules."""
    target = tmp_path / "scheduler" / "agent" / "podresources"
    target.mkdir(parents=True)
    (target / "api.proto").write_bytes((ROOT / "scheduler/agent/podresources/api.proto").read_bytes())
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--pyi_out=.",
                    "--grpc_python_out=.", "scheduler/agent/podresources/api.proto"], cwd=tmp_path, check=True)
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        fresh = _without_generator_stamps((target / name).read_text())
        committed = _without_generator_stamps((ROOT / "scheduler/agent/podresources" / name).read_text())
        assert fresh == committed, f"{name} is stale: run `make podresources` and commit"


_STAMPS = ("GRPC_GENERATED_VERSION = ", "# Protobuf Python Version:")


def _without_generator_stamps(text: str) -> str:
    """The code without the lines naming the generator's own version: a fresh venv may get a newer
    grpcio-tools (1.85.1 wrote the committed modules, 1.85.4 came out since), which stamps itself;
    protobuf's runtime check spells its version as bare numbers, one per line."""
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith(_STAMPS) and not line.strip().rstrip(",").isdigit())
