"""`--cluster FILE`: a static cluster (YAML or JSON) for `serve`, `explain`, the demo and tests.

    nodes:
    - name: a100-0
      labels: {topology.kubernetes.io/zone: zone-a}
      cpuMilli: 96000
      memoryMiB: 1048576
      gpus: [ {index: 0, uuid: GPU-..., model: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920,
               sharing: exclusive, nvlinkPeers: [1, 2, 3]}, ... ]   # the agent's annotation shape
      # or, for identical GPUs:  gpus: {count: 8, model: ..., memoryMiB: ..., sharing: mps, nvlink: all}
    pods:                        # already running, with their assignments
    - {namespace: ml, name: p0, uid: u0, node: a100-0, gpus: [GPU-...], gpuMilli: 500, gpuMemoryMiB: 8192,
       cpuMilli: 4000, memoryMiB: 16384}

Other top-level sections (`teams`, `podGroups`, ...) are kept in `ClusterSpec.sections` for the
features that read them. Every error names the file and the path of the bad field; a key this
file does not know is an error (a node with `gpu:` for `gpus:` would otherwise have no GPUs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson
import yaml

from scheduler.core.allocation import Allocation
from scheduler.core.model import Gpu, Node, Sharing
from scheduler.core.nodeinfo import NodeInfoError, gpus_from_list, shared_peers


class ClusterFileError(ValueError):
    """The cluster file is unreadable or invalid; the message names file and field."""


NODE_KEYS = ("name", "labels", "cpuMilli", "memoryMiB", "gpus")
IDENTICAL_GPU_KEYS = ("count", "model", "memoryMiB", "sharing", "nvlink")
POD_KEYS = ("namespace", "name", "uid", "node", "gpus", "gpuMilli", "gpuMemoryMiB", "cpuMilli", "memoryMiB", "team",
            "priority")


@dataclass(frozen=True)
class ClusterSpec:
    nodes: list[Node]
    pods: list[Allocation]
    sections: Mapping[str, Any] = field(default_factory=dict)


def load_cluster(path: str | Path) -> ClusterSpec:
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise ClusterFileError(f"{path}: {e.strerror or e}") from None
    if path.suffix == ".json":
        spec = _parse_json_by_item(text)
        if spec is not None:
            return spec
    try:
        data = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ClusterFileError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}{where}: "
                               f"{what}") from None
    try:
        return parse_cluster(data)
    except ClusterFileError as e:
        raise ClusterFileError(f"{path}: {e}") from None


def _parse_json_by_item(text: bytes) -> ClusterSpec | None:
    """A JSON file decoded one node and one pod at a time, or None where anything is wrong with it
    (then the whole-file path decodes it and says what).

    Decoding the whole file first held every node's dicts at once: at 50,000 nodes x 8 GPUs
    ~150 MB more at the peak, and the resident size never came back down (the freed dicts were
    interleaved with the nodes kept). Item by item, each node's dicts are freed before the next."""
    try:
        top = _decode_sections(text)
        lists = {key: _decode_items(top[key]) for key in ("nodes", "pods") if key in top}
        sections = {key: orjson.loads(memoryview(raw)) for key, raw in top.items() if key not in lists}
        return parse_cluster({**sections, **lists}, item=_item)
    except (msgspec.DecodeError, orjson.JSONDecodeError, RecursionError, ClusterFileError):
        return None  # the whole-file path finds the same fault, and says it as it always has


def _item(raw: msgspec.Raw) -> Any:
    return orjson.loads(memoryview(raw))


_decode_sections = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_items = msgspec.json.Decoder(list[msgspec.Raw] | None).decode


def parse_cluster(data: Any, *, item: Callable[[Any], Any] = lambda entry: entry) -> ClusterSpec:
    """`item` turns each entry of `nodes` and `pods` into its mapping (by default it is one)."""
    if not isinstance(data, Mapping):
        raise ClusterFileError("expected a mapping with a 'nodes' list")
    nodes_data = data.get("nodes")
    if not isinstance(nodes_data, list) or not nodes_data:
        raise ClusterFileError("'nodes' must be a non-empty list")
    nodes = [_node(item(n), f"nodes[{i}]") for i, n in enumerate(nodes_data)]
    by_name: dict[str, Node] = {}
    for i, node in enumerate(nodes):
        if node.name in by_name:
            first = next(j for j, n in enumerate(nodes) if n.name == node.name)
            raise ClusterFileError(f"nodes[{i}]: duplicate node name {node.name!r} (also nodes[{first}])")
        by_name[node.name] = node
    pods = [_pod(item(p), f"pods[{i}]", by_name) for i, p in enumerate(data.get("pods") or [])]
    uids = [p.uid for p in pods]
    if len(set(uids)) != len(uids):
        raise ClusterFileError("pod UIDs must be unique")
    sections = {k: v for k, v in data.items() if k not in ("nodes", "pods")}
    return ClusterSpec(nodes, pods, sections)


def _node(entry: Any, where: str) -> Node:
    if not isinstance(entry, Mapping):
        raise ClusterFileError(f"{where}: expected a mapping")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ClusterFileError(f"{where}: 'name' must be a non-empty string")
    where = f"{where} ({name})"
    _known_keys(entry, NODE_KEYS, where)
    labels = entry.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ClusterFileError(f"{where}: 'labels' must map strings to strings")
    cpu = _positive(entry, "cpuMilli", where)
    memory = _positive(entry, "memoryMiB", where)
    gpus_data = entry.get("gpus") or []
    try:
        if isinstance(gpus_data, Mapping):
            gpus = _identical_gpus(name, gpus_data, f"{where}.gpus")
        else:
            gpus = gpus_from_list(gpus_data, where=f"{where}.gpus")
    except NodeInfoError as e:
        raise ClusterFileError(str(e)) from None
    try:
        return Node(name=name, cpu_milli=cpu, memory_mib=memory, gpus=gpus, labels=labels)
    except ValueError as e:
        raise ClusterFileError(f"{where}: {e}") from None


def _identical_gpus(node: str, spec: Mapping[str, Any], where: str) -> tuple[Gpu, ...]:
    _known_keys(spec, IDENTICAL_GPU_KEYS, where)
    count = _positive(spec, "count", where)
    model = spec.get("model")
    if not isinstance(model, str) or not model:
        raise ClusterFileError(f"{where}: 'model' must be a non-empty string")
    memory = _positive(spec, "memoryMiB", where)
    try:
        sharing = Sharing.parse(spec.get("sharing", "exclusive"))
    except ValueError as e:
        raise ClusterFileError(f"{where}: {e}") from None
    nvlink = spec.get("nvlink", "none")
    if nvlink not in ("none", "all", "pairs"):
        raise ClusterFileError(f"{where}: 'nvlink' must be none, all or pairs")

    def peers(i: int) -> tuple[int, ...]:
        if nvlink == "all":
            return shared_peers(tuple(j for j in range(count) if j != i))
        if nvlink == "pairs":
            return shared_peers((i ^ 1,) if (i ^ 1) < count else ())
        return ()

    return tuple(Gpu(index=i, uuid=f"GPU-{node}-{i}", model=model, memory_mib=memory, sharing=sharing,
                     nvlink_peers=peers(i)) for i in range(count))


def _pod(entry: Any, where: str, nodes: Mapping[str, Node]) -> Allocation:
    if not isinstance(entry, Mapping):
        raise ClusterFileError(f"{where}: expected a mapping")
    for key in ("namespace", "name", "node"):
        if not isinstance(entry.get(key), str) or not entry.get(key):
            raise ClusterFileError(f"{where}: '{key}' must be a non-empty string")
    _known_keys(entry, POD_KEYS, where)
    node = nodes.get(entry["node"])
    if node is None:
        raise ClusterFileError(f"{where}: node {entry['node']!r} is not in 'nodes'")
    uuids = entry.get("gpus") or []
    if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
        raise ClusterFileError(f"{where}: 'gpus' must be a list of GPU UUIDs")
    slot_of = {g.uuid: g for g in node.gpus}
    unknown = [u for u in uuids if u not in slot_of]
    if unknown:
        raise ClusterFileError(f"{where}: GPU {unknown[0]!r} is not on node {node.name}")
    milli = _int(entry, "gpuMilli", where, 0)
    if milli and (len(uuids) != 1 or not 1 <= milli <= 999):
        raise ClusterFileError(f"{where}: a share ('gpuMilli' 1..999) holds exactly one GPU")
    gpu_memory = _int(entry, "gpuMemoryMiB", where, 0)
    share = bool(milli)
    gpus = [slot_of[u] for u in uuids]
    return Allocation(
        uid=str(entry.get("uid") or f"{entry['namespace']}/{entry['name']}"),
        namespace=entry["namespace"], name=entry["name"], node=node.name,
        gpu_uuids=tuple(uuids), slots=tuple(g.index for g in gpus),
        milli=milli if share else (1000 if uuids else 0),
        gpu_memory_mib=(gpu_memory,) if share else tuple(g.memory_mib for g in gpus),
        cpu_milli=_int(entry, "cpuMilli", where, 0), memory_mib=_int(entry, "memoryMiB", where, 0),
        share=share, mps=share and gpus[0].sharing is Sharing.MPS,
        team=str(entry.get("team") or ""), priority=_int(entry, "priority", where, 0),
    )


def _known_keys(entry: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = [k for k in entry if k not in known]
    if unknown:
        raise ClusterFileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)})")


def _int(entry: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ClusterFileError(f"{where}: '{key}' must be a non-negative integer, got {value!r}")
    return value


def _positive(entry: Mapping[str, Any], key: str, where: str) -> int:
    value = _int(entry, key, where, 0)
    if value <= 0:
        raise ClusterFileError(f"{where}: '{key}' must be a positive integer")
    return value
