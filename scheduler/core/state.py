"""The cluster's books as numpy arrays: one row per node, one (node, slot) cell per GPU.

The GPU table is laid out node × slot, slot = the GPU's index on its node, so a per-node question
("how many free whole GPUs?") is one reduction along axis 1. A slot beyond a node's GPU count is
absent: `present` is False and it has no capacity, so it never fits anything.

Rules this module keeps:
- Only `apply`, `release`, `add_node`, `replace_node` and `remove_node` change the books, and each
  gives the node it touches a new version (score caches key on it), never used before by this
  state or any of its copies: equal versions mean equal contents.
- Capacity never goes negative and never above the GPU's size: `apply` checks before it writes,
  so a caller's mistake raises `CapacityError` instead of corrupting the books.
- Removed nodes keep their row as a tombstone (no capacity, unknown name) until `compact` runs.
- `pod_classes` counts the pods on each node by GPU class (column 0: shares, column k: pods
  holding k whole GPUs; CPU-only pods are not counted). It changes only with the books, through
  the grants `apply`/`release`/`restore` take, so it is always the census of the grants applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler.core.contract import MILLI_PER_GPU
from scheduler.core.model import Node, Sharing

_INITIAL_ROWS = 16


def slot_width(gpus: int) -> int:
    """Slots per row: the most GPUs on a node, rounded up to a multiple of 8 so a row of booleans
    is a whole number of 64-bit words (per-node counts become popcounts; see `filters`)."""
    return max(8, -(-gpus // 8) * 8)


class CapacityError(RuntimeError):
    """An allocation that does not fit the books (a bug in the caller, never a verdict)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Capacity taken on one node: per listed slot `milli` and `gpu_memory_mib`, plus CPU and memory."""

    slots: tuple[int, ...]
    milli: int
    gpu_memory_mib: tuple[int, ...]
    cpu_milli: int
    memory_mib: int

    @property
    def pod_class(self) -> int:
        """-1 for no GPU, 0 for a share of one GPU, k for k whole GPUs (a column of `pod_classes`)."""
        if not self.slots:
            return -1
        return 0 if self.milli < MILLI_PER_GPU else len(self.slots)


class ClusterState:
    """Mutable arrays describing capacity and what is free. Read by filters and policies."""

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        nodes = list(nodes)
        self.models: list[str] = []
        self._model_ids: dict[str, int] = {}
        self._layouts: dict[tuple, int] = {}
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.specs: list[Node | None] = []
        self.slots = slot_width(max((len(n.gpus) for n in nodes), default=0))
        self._alloc_rows(max(_INITIAL_ROWS, len(nodes)), self.slots)
        self.size = 0
        self.structure_version = 0
        self._version_counter = [0]
        self.generation = 0
        """Bumped by every change to the books, so a caller can tell whether anything moved."""
        self.capacity_version = 0
        """Bumped whenever a node's capacity is written or removed (not by grants), so a cluster-wide
        total of capacity can be cached until the nodes themselves change."""
        for node in nodes:
            self.add_node(node)

    # ----------------------------------------------------------------- layout
    def _alloc_rows(self, rows: int, slots: int) -> None:
        self.cpu_total = np.zeros(rows, np.int64)
        self.cpu_free = np.zeros(rows, np.int64)
        self.mem_total = np.zeros(rows, np.int64)
        self.mem_free = np.zeros(rows, np.int64)
        self.gpu_count = np.zeros(rows, np.int32)
        self.unavailable = np.zeros(rows, bool)
        self.version = np.zeros(rows, np.int64)
        self.layout = np.zeros(rows, np.int64)
        """Nodes whose GPUs are alike (model, memory, sharing, health, MIG, NVLink) share a layout id."""
        shape = (rows, slots)
        self.present = np.zeros(shape, bool)
        self.healthy = np.zeros(shape, bool)
        self.mig = np.zeros(shape, bool)
        self.usable = np.zeros(shape, bool)
        self.model_id = np.full(shape, -1, np.int32)
        self.gpu_memory = np.zeros(shape, np.int64)
        self.free_milli = np.zeros(shape, np.int64)
        self.free_memory = np.zeros(shape, np.int64)
        self.sharing = np.zeros(shape, np.int8)
        self.nvlink = np.zeros(shape, np.uint64)
        self.pod_classes = np.zeros((rows, slots + 1), np.int32)

    _NODE_ARRAYS = ("cpu_total", "cpu_free", "mem_total", "mem_free", "gpu_count", "unavailable", "version", "layout")
    _GPU_ARRAYS = ("present", "healthy", "mig", "usable", "model_id", "gpu_memory", "free_milli",
                   "free_memory", "sharing", "nvlink")

    def _grow(self, rows: int, slots: int) -> None:
        old = {name: getattr(self, name) for name in self._NODE_ARRAYS + self._GPU_ARRAYS + ("pod_classes",)}
        old_rows, old_slots = old["present"].shape
        self._alloc_rows(rows, slots)
        for name in self._NODE_ARRAYS:
            getattr(self, name)[:old_rows] = old[name]
        for name in self._GPU_ARRAYS:
            getattr(self, name)[:old_rows, :old_slots] = old[name]
        self.pod_classes[:old_rows, :old_slots + 1] = old["pod_classes"]
        self.slots = slots
        self.structure_version += 1

    @property
    def rows(self) -> int:
        return self.present.shape[0]

    def model_of(self, name: str) -> int:
        if name not in self._model_ids:
            self._model_ids[name] = len(self.models)
            self.models.append(name)
            self.structure_version += 1
        return self._model_ids[name]

    # ------------------------------------------------------------ node changes
    def add_node(self, node: Node) -> int:
        if node.name in self.index:
            raise ValueError(f"node {node.name} already present")
        if self.size == self.rows or len(node.gpus) > self.slots:
            self._grow(max(self.rows * 2 if self.size == self.rows else self.rows, _INITIAL_ROWS),
                       max(self.slots, slot_width(len(node.gpus))))
        row = self.size
        self.size += 1
        self.names.append(node.name)
        self.specs.append(node)
        self.index[node.name] = row
        self._write_node(row, node)
        self.structure_version += 1
        return row

    def replace_node(self, row: int, node: Node) -> None:
        """Rewrite a node's capacity with everything free; the caller re-applies its grants."""
        if len(node.gpus) > self.slots:
            self._grow(self.rows, slot_width(len(node.gpus)))
        old = self.specs[row]
        if old is not None and old.name != node.name:
            raise ValueError(f"row {row} holds {old.name}, not {node.name}")
        self.specs[row] = node
        self._write_node(row, node)

    def remove_node(self, row: int) -> None:
        node = self.specs[row]
        if node is None:
            return
        del self.index[node.name]
        self.specs[row] = None
        self.names[row] = ""
        self._clear_row(row)
        self._touch(row)
        self.capacity_version += 1
        self.structure_version += 1

    def _clear_row(self, row: int) -> None:
        for name in self._NODE_ARRAYS:
            if name != "version":
                getattr(self, name)[row] = 0
        for name in self._GPU_ARRAYS:
            getattr(self, name)[row] = -1 if name == "model_id" else 0
        self.pod_classes[row] = 0

    def _write_node(self, row: int, node: Node) -> None:
        self._clear_row(row)
        self.cpu_total[row] = self.cpu_free[row] = node.cpu_milli
        self.mem_total[row] = self.mem_free[row] = node.memory_mib
        self.gpu_count[row] = len(node.gpus)
        self.unavailable[row] = bool(node.unavailable_reason)
        for slot, gpu in enumerate(node.gpus):
            self.present[row, slot] = True
            self.healthy[row, slot] = gpu.healthy
            self.mig[row, slot] = gpu.mig_enabled
            self.usable[row, slot] = gpu.healthy and not gpu.mig_enabled
            self.model_id[row, slot] = self.model_of(gpu.model)
            self.gpu_memory[row, slot] = gpu.memory_mib
            self.free_milli[row, slot] = MILLI_PER_GPU
            self.free_memory[row, slot] = gpu.memory_mib
            self.sharing[row, slot] = int(gpu.sharing)
            mask = 0
            for peer in gpu.nvlink_peers:
                if 0 <= peer < len(node.gpus) and peer != slot:
                    mask |= 1 << peer
            self.nvlink[row, slot] = mask
        self.capacity_version += 1
        self.layout[row] = self._layouts.setdefault(
            tuple((g.model, g.memory_mib, int(g.sharing), g.healthy, g.mig_enabled, g.nvlink_peers) for g in node.gpus),
            len(self._layouts) + 1)
        self._touch(row)

    def _touch(self, row: int) -> None:
        # Versions come from a counter shared with every `copy()`, so a what-if copy (gang planning,
        # reclaim plans) never gives a row a version the original will later reach with other
        # contents: caches keyed on versions (FGD's memo is shared by the engine and its plans) stay right.
        self._version_counter[0] += 1
        self.version[row] = self._version_counter[0]
        self.generation += 1

    def set_unavailable(self, row: int, unavailable: bool) -> None:
        if self.unavailable[row] != unavailable:
            self.unavailable[row] = unavailable
            self._touch(row)

    # --------------------------------------------------------------- the books
    def check(self, row: int, grant: Grant) -> str:
        """Why `grant` does not fit node `row` now, or "" when it does."""
        if self.specs[row] is None:
            return "node is gone"
        if grant.cpu_milli > self.cpu_free[row]:
            return "not enough free CPU"
        if grant.memory_mib > self.mem_free[row]:
            return "not enough free memory"
        if len(set(grant.slots)) != len(grant.slots):
            return "the same GPU twice"
        for slot, memory in zip(grant.slots, grant.gpu_memory_mib, strict=True):
            if not 0 <= slot < self.gpu_count[row] or not self.usable[row, slot]:
                return f"GPU {slot} is not usable"
            if self.free_milli[row, slot] < grant.milli or self.free_memory[row, slot] < memory:
                return f"GPU {slot} has too little free capacity"
        return ""

    def apply(self, row: int, grant: Grant) -> None:
        reason = self.check(row, grant)
        if reason:
            raise CapacityError(f"{self.names[row] or row}: {reason}")
        self._add(row, grant, -1)

    def release(self, row: int, grant: Grant) -> None:
        """Give a grant back. Tolerates GPUs that vanished or changed since the grant was made."""
        if self.specs[row] is None:
            return
        self._add(row, grant, +1)
        np.minimum(self.free_milli[row], np.where(self.present[row], MILLI_PER_GPU, 0), out=self.free_milli[row])
        np.minimum(self.free_memory[row], self.gpu_memory[row], out=self.free_memory[row])
        self.cpu_free[row] = min(self.cpu_free[row], self.cpu_total[row])
        self.mem_free[row] = min(self.mem_free[row], self.mem_total[row])
        np.maximum(self.pod_classes[row], 0, out=self.pod_classes[row])

    def restore(self, row: int, grant: Grant) -> str:
        """Re-apply a recorded grant on a rebuilt node, taking what still exists (never below zero).

        Returns "" when it applied whole, else what did not fit (the record is kept either way:
        the pod runs there, whatever the books say).
        """
        problem = self.check(row, grant)
        if not problem:
            self._add(row, grant, -1)
            return ""
        self.cpu_free[row] = max(0, self.cpu_free[row] - grant.cpu_milli)
        self.mem_free[row] = max(0, self.mem_free[row] - grant.memory_mib)
        for slot, memory in zip(grant.slots, grant.gpu_memory_mib, strict=True):
            if 0 <= slot < self.slots:
                self.free_milli[row, slot] = max(0, self.free_milli[row, slot] - grant.milli)
                self.free_memory[row, slot] = max(0, self.free_memory[row, slot] - memory)
        self._count(row, grant, +1)
        self._touch(row)
        return problem

    def _add(self, row: int, grant: Grant, sign: int) -> None:
        self.cpu_free[row] += sign * grant.cpu_milli
        self.mem_free[row] += sign * grant.memory_mib
        for slot, memory in zip(grant.slots, grant.gpu_memory_mib, strict=True):
            if 0 <= slot < self.slots:
                self.free_milli[row, slot] += sign * grant.milli
                self.free_memory[row, slot] += sign * memory
        self._count(row, grant, -sign)
        self._touch(row)

    def _count(self, row: int, grant: Grant, delta: int) -> None:
        cls = grant.pod_class
        if 0 <= cls <= self.slots:
            self.pod_classes[row, cls] += delta

    # ------------------------------------------------------------------- views
    def rows_of(self, names: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """Row indices of known names, and the positions in `names` that are unknown."""
        get = self.index.get
        rows = [get(n, -1) for n in names]
        arr = np.fromiter(rows, np.int64, len(rows))
        unknown = np.flatnonzero(arr < 0).tolist() if (arr < 0).any() else []
        return arr, unknown

    def live_rows(self) -> np.ndarray:
        return np.fromiter((i for i, s in enumerate(self.specs) if s is not None), np.int64)

    def uuids(self, row: int) -> tuple[str, ...]:
        node = self.specs[row]
        return tuple(g.uuid for g in node.gpus) if node else ()

    def sharing_of(self, row: int, slot: int) -> Sharing:
        return Sharing(int(self.sharing[row, slot]))

    def copy(self) -> ClusterState:
        """An independent copy for what-ifs; node specs are shared (they are immutable)."""
        other = object.__new__(ClusterState)
        other.__dict__.update(self.__dict__)
        for name in self._NODE_ARRAYS + self._GPU_ARRAYS + ("pod_classes",):
            setattr(other, name, getattr(self, name).copy())
        other.models = list(self.models)
        other._model_ids = dict(self._model_ids)
        other._layouts = dict(self._layouts)
        other.names = list(self.names)
        other.index = dict(self.index)
        other.specs = list(self.specs)
        return other
