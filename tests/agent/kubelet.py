"""A kubelet pod-resources server for tests: the generated servicer, a real gRPC server, a unix socket."""

from __future__ import annotations

import shutil
import tempfile
from concurrent import futures
from pathlib import Path

import grpc

from scheduler.agent.podresources import api_pb2, api_pb2_grpc


def pod(namespace: str, name: str, **containers: dict[str, list[str]]) -> api_pb2.PodResources:
    """`pod("ml", "train", main={"nvidia.com/gpu": ["GPU-a"]})`."""
    return api_pb2.PodResources(namespace=namespace, name=name, containers=[
        api_pb2.ContainerResources(name=cname, devices=[
            api_pb2.ContainerDevices(resource_name=resource, device_ids=ids) for resource, ids in devices.items()])
        for cname, devices in containers.items()])


class FakeKubelet(api_pb2_grpc.PodResourcesListerServicer):
    """Serves `pods` (mutable between calls); `fail_with` makes List answer that status code."""

    def __init__(self) -> None:
        self.pods: list[api_pb2.PodResources] = []
        self.fail_with: grpc.StatusCode | None = None
        self.calls = 0
        # Unix socket paths are limited to ~107 bytes: pytest's tmp_path can be longer.
        self._dir = Path(tempfile.mkdtemp(prefix="kubelet-", dir="/tmp"))
        self.socket = self._dir / "kubelet.sock"
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix://{self.socket}")

    def List(self, request, context):  # the gRPC method name, hence the capital
        self.calls += 1
        if self.fail_with is not None:
            context.abort(self.fail_with, "injected failure")
        return api_pb2.ListPodResourcesResponse(pod_resources=self.pods)

    def __enter__(self) -> FakeKubelet:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(grace=None).wait()
        shutil.rmtree(self._dir, ignore_errors=True)
