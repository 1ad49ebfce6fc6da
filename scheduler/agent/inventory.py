"""From NVML readings to the node annotation `gpusched.io/gpus` (DESIGN §3).

Pure: readings, health verdicts and the sharing inputs in, annotation entries out. The
entry shape is `scheduler.core.nodeinfo.gpu_to_dict` (what the extender reads back with
`gpu_from_dict`), plus agent-only fields the extender ignores and operators want when a
placement looks wrong: `pciBusId`, `numaNode`, `computeMode`, `migDevices`.

Rules kept here:
- model: the name as GPU Feature Discovery writes `nvidia.com/gpu.product` (see `gfd_product`),
  so the agent's model and the node's GFD label are the same string;
- NVLink peers: see `nvlink_peers`;
- sharing: see `sharing_mode`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.agent.health import HEALTHY, GpuHealth
from scheduler.agent.readings import ComputeMode, GpuReading, NodeReading
from scheduler.core.model import Gpu, Sharing
from scheduler.core.nodeinfo import gpu_to_dict


def gfd_product(name: str) -> str:
    """`NVIDIA A100-SXM4-80GB` -> `NVIDIA-A100-SXM4-80GB`, `Tesla T4` -> `Tesla-T4`.

    GFD's rule (NVIDIA/k8s-device-plugin, internal/lm/resource.go, `productLabel`): every
    space becomes a dash, `strings.ReplaceAll(p, " ", "-")`, nothing else changes. (GFD
    appends `-SHARED` when time-slicing renames nothing; that suffix describes the sharing
    config, not the GPU, so it is not part of the model here.)
    """
    return name.replace(" ", "-")


_BUS_ID = re.compile(r"^([0-9a-f]{1,8}):([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$")


def normalise_bus_id(bus_id: str) -> str:
    """NVML writes `00000000:07:00.0` (8-digit domain), sysfs and lspci `0000:07:00.0`, and
    letters in either case; compare them as one canonical form."""
    text = bus_id.strip().lower()
    m = _BUS_ID.match(text)
    if m is None:
        return text
    domain, bus, device, function = m.groups()
    return f"{int(domain, 16):08x}:{int(bus, 16):02x}:{int(device, 16):02x}.{function}"


def nvlink_peers(gpus: Sequence[GpuReading]) -> dict[int, tuple[int, ...]]:
    """Which other GPU indices each GPU reaches over an active NVLink.

    1. A link whose far end is another GPU of this node (by PCI bus id) reaches that GPU.
    2. A link to an NVSwitch reaches every GPU linked to the same switch (HGX/DGX boards:
       all GPUs hang off the same switches, so this is all-to-all).
    3. When the driver does not say what is at the far end, a far end that is not a GPU
       here but that two or more GPUs link to is a switch.
    Inactive links reach nothing; a GPU is never its own peer.
    """
    index_of_bus = {normalise_bus_id(g.pci_bus_id): g.index for g in gpus if g.pci_bus_id}
    linked_from: dict[str, set[int]] = {}
    for gpu in gpus:
        for link in gpu.nvlinks:
            if link.active and link.remote_bus_id:
                linked_from.setdefault(normalise_bus_id(link.remote_bus_id), set()).add(gpu.index)

    peers: dict[int, set[int]] = {g.index: set() for g in gpus}
    for gpu in gpus:
        for link in gpu.nvlinks:
            if not link.active or not link.remote_bus_id:
                continue
            remote = normalise_bus_id(link.remote_bus_id)
            if remote in index_of_bus:
                peers[gpu.index].add(index_of_bus[remote])
            elif link.remote_kind == "switch" or (link.remote_kind == "" and len(linked_from[remote]) >= 2):
                peers[gpu.index] |= linked_from[remote]
    return {index: tuple(sorted(p - {index})) for index, p in peers.items()}


def sharing_mode(gpu: GpuReading, *, mps_daemon: bool, strategy_label: str) -> Sharing:
    """How this GPU may be shared, in order:

    1. MIG enabled: `exclusive` (its slices belong to the device plugin's `nvidia.com/mig-*`);
    2. `mps` when an MPS control daemon runs on the node AND the GPU is in EXCLUSIVE_PROCESS
       compute mode: the NVIDIA device plugin's MPS daemon sets exactly that mode on the GPUs
       it serves (and back to DEFAULT when it stops), and standalone MPS setups are told to
       do the same; a leftover pipe directory alone is not enough;
    3. `time-slicing` when the node label `nvidia.com/gpu.sharing-strategy` (written by GFD
       from the device plugin's sharing config) says so;
    4. otherwise `exclusive`. A label saying `mps` without a running daemon stays `exclusive`:
       publishing MPS before the daemon runs would place shares whose limits nothing enforces.
    """
    if gpu.mig_enabled:
        return Sharing.EXCLUSIVE
    if mps_daemon and gpu.compute_mode is ComputeMode.EXCLUSIVE_PROCESS:
        return Sharing.MPS
    if strategy_label.strip().lower() == "time-slicing":
        return Sharing.TIME_SLICING
    return Sharing.EXCLUSIVE


def build_entries(reading: NodeReading, *, health: Mapping[str, GpuHealth], mps_daemon: bool,
                  strategy_label: str) -> list[dict[str, Any]]:
    """The annotation's entries, in index order. `health` is by UUID; absent means healthy."""
    peers = nvlink_peers(reading.gpus)
    entries = []
    for g in reading.gpus:
        verdict = health.get(g.uuid, HEALTHY)
        gpu = Gpu(index=g.index, uuid=g.uuid, model=gfd_product(g.name), memory_mib=max(1, g.memory_total_mib),
                  sharing=sharing_mode(g, mps_daemon=mps_daemon, strategy_label=strategy_label),
                  mig_enabled=g.mig_enabled, healthy=verdict.healthy, nvlink_peers=peers[g.index],
                  unhealthy_reason=verdict.reason)
        entry = gpu_to_dict(gpu)
        entry["pciBusId"] = normalise_bus_id(g.pci_bus_id) if g.pci_bus_id else ""
        if g.numa_node is not None and g.numa_node >= 0:
            entry["numaNode"] = g.numa_node
        entry["computeMode"] = g.compute_mode.value
        if g.mig_enabled:
            entry["migDevices"] = [{"uuid": m.uuid, "profile": m.profile, "memoryMiB": m.memory_mib,
                                    "gpuInstance": m.gpu_instance, "computeInstance": m.compute_instance}
                                   for m in g.mig_devices]
        entries.append(entry)
    return entries


def encode(entries: list[dict[str, Any]]) -> str:
    """The annotation value: compact, keys sorted, so equal inventories are equal strings."""
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))
