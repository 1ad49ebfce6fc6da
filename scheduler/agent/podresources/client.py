"""A client for the kubelet's `v1.PodResourcesLister/List` on its unix socket.

The kubelet answers with every pod it runs (admitted, not terminated) and, per container,
the device ids each device plugin allocated, by resource name. For the NVIDIA device
plugin and `nvidia.com/gpu` those ids are GPU UUIDs (`GPU-...`), or `GPU-...::N` replicas
under time-slicing, or indices with `deviceIDStrategy: index`; `reconcile` maps them to
GPUs. Nothing here interprets them.

The socket is root-owned: the DaemonSet mounts `/var/lib/kubelet/pod-resources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from scheduler.agent.podresources import api_pb2, api_pb2_grpc

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
_MAX_MESSAGE = 16 * 1024 * 1024
"""The kubelet's own cap on a pod-resources response (16 MiB): thousands of pods fit."""


class PodResourcesError(Exception):
    """The kubelet could not be asked. One line; `reason` labels the error metric."""

    reason = "pod-resources"


@dataclass(frozen=True, slots=True)
class ContainerDevices:
    container: str
    resource: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PodDevices:
    """What the kubelet says one pod was given."""

    namespace: str
    name: str
    devices: tuple[ContainerDevices, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def device_ids(self, resource: str) -> tuple[str, ...]:
        """Every id of `resource` over all containers, first occurrence first."""
        seen: dict[str, None] = {}
        for d in self.devices:
            if d.resource == resource:
                seen.update(dict.fromkeys(d.device_ids))
        return tuple(seen)


def pods_from_response(response: api_pb2.ListPodResourcesResponse) -> dict[str, PodDevices]:
    """By `namespace/name`. Containers without devices are left out of `devices`."""
    pods: dict[str, PodDevices] = {}
    for pod in response.pod_resources:
        devices = tuple(ContainerDevices(container=c.name, resource=d.resource_name, device_ids=tuple(d.device_ids))
                        for c in pod.containers for d in c.devices)
        entry = PodDevices(namespace=pod.namespace, name=pod.name, devices=devices)
        pods[entry.key] = entry
    return pods


class PodResourcesClient:
    """One gRPC channel to the kubelet, reused across calls. `close()` is idempotent."""

    def __init__(self, socket_path: str | Path = DEFAULT_SOCKET, *, timeout_s: float = 10.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout_s = timeout_s
        self._channel: grpc.Channel | None = None

    def _stub(self) -> api_pb2_grpc.PodResourcesListerStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                f"unix://{self.socket_path}",
                options=[("grpc.max_receive_message_length", _MAX_MESSAGE)])
        return api_pb2_grpc.PodResourcesListerStub(self._channel)

    def list(self) -> Mapping[str, PodDevices]:
        if not Path(self.socket_path).exists():
            raise PodResourcesError(f"kubelet pod-resources socket {self.socket_path} not found "
                                    "(mount /var/lib/kubelet/pod-resources into the agent)")
        try:
            response = self._stub().List(api_pb2.ListPodResourcesRequest(), timeout=self.timeout_s)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            detail = e.details() if hasattr(e, "details") else str(e)
            name = code.name if code is not None else "ERROR"
            raise PodResourcesError(f"kubelet pod-resources List on {self.socket_path} failed: "
                                    f"{name}: {(detail or '').splitlines()[0] if detail else ''}".rstrip(": ")) from None
        return pods_from_response(response)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
