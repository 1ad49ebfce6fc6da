"""Planning a gang: every member's node and GPUs at once, on a what-if copy of the books.

`plan_gang(state, members, ...)` returns a `GangPlan` (a prospective allocation per member) or a
one-line reason; it never changes `state`. Holding the plan is the caller's business
(`gangs.GangBook` reserves it in one step).

What a plan prefers, in order:
  1. every member fits, each on one node (a member never spans nodes);
  2. fewest nodes;
  3. fewest zones (`topology.kubernetes.io/zone`), then fewest racks (the configured rack label);
  4. NVLink inside a node: nodes with more NVLink links among their free GPUs, and on each node
     the pod's GPU pick (NVLink-connected sets first);
  5. the pod's scoring policy;
  6. the node name (the deterministic tie-break).

How: members are sorted (largest GPU ask first, then CPU, then name and UID) and grouped by
shape, candidate nodes and policy. Groups are placed largest first on a copy of the books. For
one group a single vectorised pass counts how many members each candidate node can take
(`copies`); nodes are ranked by criteria 2-6 (a node the gang already uses adds no node, so it
comes first) and taken in that order, and the node that completes the group is the best fit:
among the nodes that can take everything left, the one in the gang's zone/rack with the fewest
spare copies, so bigger holes stay whole for bigger asks.

Exact where cheap, greedy where not: for a group of identical members the node count is minimal
(taking the nodes that hold most copies first is optimal for identical items). Several shapes
are placed group after group (bin packing is NP-hard), and co-location is a preference among
nodes that hold equally many members, not a search over domains. Cost: one vectorised pass per
group plus one single-row fit and GPU pick per member, so 1,024 members on 5,000 nodes take
tens of milliseconds (benchmarks/results/gangs.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler.core import filters
from scheduler.core.allocation import Allocation
from scheduler.core.contract import ZONE_LABEL
from scheduler.core.policies import Policy, PolicyContext
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

_NO_LIMIT = np.iinfo(np.int64).max // 4

Allocate = Callable[[PodRequest, int, tuple[int, ...]], Allocation]
"""The record a pod would get on (row, slots): the engine's own builder, sequence 0."""


@dataclass(frozen=True)
class Topology:
    """Which node labels make a zone and a rack. Nodes without a label share one "unlabelled" domain."""

    zone_label: str = ZONE_LABEL
    rack_label: str = ""

    def domains(self, state: ClusterState) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        """(zone id per row, rack id per row, zone names, rack names); a rack is (zone, rack label)."""
        zones: dict[str, int] = {}
        racks: dict[tuple[str, str], int] = {}
        zone_of = np.zeros(state.rows, np.int64)
        rack_of = np.zeros(state.rows, np.int64)
        for row, spec in enumerate(state.specs):
            labels = spec.labels if spec is not None else {}
            zone = labels.get(self.zone_label, "") if self.zone_label else ""
            rack = labels.get(self.rack_label, "") if self.rack_label else ""
            zone_of[row] = zones.setdefault(zone, len(zones))
            rack_of[row] = racks.setdefault((zone, rack), len(racks))
        return zone_of, rack_of, list(zones), ["/".join(k).strip("/") for k in racks]


@dataclass(frozen=True)
class GangPlan:
    placements: tuple[Allocation, ...]
    """One prospective allocation per member (sequence 0), in planning order."""
    nodes: tuple[str, ...]
    zones: tuple[str, ...]
    racks: tuple[str, ...]


def member_order(pod: PodRequest) -> tuple:
    """Largest ask first; the name and UID make the order total."""
    return (-pod.total_milli, -pod.gpus, -pod.cpu_milli, -pod.memory_mib, pod.name, pod.uid)


def plan_gang(state: ClusterState, members: Sequence[PodRequest], *,
              candidates: Mapping[str, np.ndarray] | None = None,
              models_of: Callable[[PodRequest], np.ndarray],
              policy_of: Callable[[PodRequest], Policy],
              ctx: PolicyContext,
              allocate: Allocate,
              topology: Topology = Topology()) -> GangPlan | str:
    """Plan every member (see the module docstring), or say why the gang does not fit now.

    `candidates` maps a member UID to the node rows it may use (the nodes kube-scheduler's own
    filters passed for it); a member without an entry may use every live node.
    """
    candidates = candidates or {}
    trial = state.copy()
    zone_of, rack_of, zone_names, rack_names = topology.domains(state)
    live = trial.live_rows()
    used = np.zeros(trial.rows, bool)
    placements: list[Allocation] = []
    for group in _groups(members, candidates, policy_of):
        rows = candidates.get(group[0].uid)
        rows = live if rows is None else np.intersect1d(rows[(rows >= 0) & (rows < trial.rows)], live)
        problem = _place_group(trial, group, rows, used, zone_of, rack_of, models_of(group[0]),
                               policy_of(group[0]), ctx, allocate, placements)
        if problem:
            return problem
    order = list(dict.fromkeys(p.node for p in placements))
    rows_used = [state.index[n] for n in order]
    return GangPlan(tuple(placements), tuple(order),
                    tuple(dict.fromkeys(zone_names[zone_of[r]] for r in rows_used)),
                    tuple(dict.fromkeys(rack_names[rack_of[r]] for r in rows_used)))


def _groups(members: Sequence[PodRequest], candidates: Mapping[str, np.ndarray],
            policy_of: Callable[[PodRequest], Policy]) -> list[list[PodRequest]]:
    groups: dict[tuple, list[PodRequest]] = {}
    for pod in sorted(members, key=member_order):
        rows = candidates.get(pod.uid)
        where = id(rows) if rows is not None else None  # callers share one array per distinct node list
        groups.setdefault((pod.shape, where, policy_of(pod).name), []).append(pod)
    return sorted(groups.values(), key=lambda g: member_order(g[0]))


def copies(state: ClusterState, pod: PodRequest, rows: np.ndarray, models: np.ndarray) -> np.ndarray:
    """int64 [B]: how many pods shaped like `pod` each row can take at once now."""
    fit = filters.fit(state, pod, rows, models)
    cpu = state.cpu_free[rows] // pod.cpu_milli if pod.cpu_milli else np.full(len(rows), _NO_LIMIT)
    memory = state.mem_free[rows] // pod.memory_mib if pod.memory_mib else np.full(len(rows), _NO_LIMIT)
    if pod.gpus:
        gpu = fit.slot_fit.sum(1) // pod.gpus
    elif pod.is_share:
        per_slot = state.free_milli[rows] // pod.gpu_milli
        if pod.gpu_memory_mib:
            per_slot = np.minimum(per_slot, state.free_memory[rows] // pod.gpu_memory_mib)
        gpu = np.where(fit.slot_fit, per_slot, 0).sum(1)
    else:
        gpu = np.full(len(rows), _NO_LIMIT)
    return np.where(fit.fits, np.minimum(np.minimum(cpu, memory), gpu), 0).astype(np.int64)


def _place_group(trial: ClusterState, group: list[PodRequest], rows: np.ndarray, used: np.ndarray,
                 zone_of: np.ndarray, rack_of: np.ndarray, models: np.ndarray, policy: Policy,
                 ctx: PolicyContext, allocate: Allocate, placements: list[Allocation]) -> str:
    pod = group[0]
    count = len(group)
    k = np.minimum(copies(trial, pod, rows, models), count)
    room = int(k.sum())
    if room < count:
        return f"room for {room} of {count} members that each need {_describe(pod)}"
    keys = _preference_keys(trial, pod, rows, k, used, zone_of, rack_of, count, models, policy, ctx)
    order = np.lexsort(keys)
    waiting = list(group)
    taken = np.zeros(len(rows), bool)
    position = 0
    while waiting:
        nxt = _next_index(order, position, taken, k)
        if nxt is None:
            return f"room for {count - len(waiting)} of {count} members that each need {_describe(pod)}"
        position, i = nxt
        if not used[rows[i]] and k[i] >= len(waiting):
            i = _best_fit(rows, k, taken, used, zone_of, rack_of, len(waiting), keys)
        taken[i] = True
        row = int(rows[i])
        for _ in range(int(min(k[i], len(waiting)))):
            member = waiting[0]
            fit = filters.fit(trial, member, np.array([row]), models)
            if not fit.fits[0]:
                break  # the count was optimistic for this row; the next node takes the rest
            slots = tuple(int(s) for s in policy.pick(trial, member, row, fit.slot_fit[0], ctx))
            alloc = allocate(member, row, slots)
            trial.apply(row, alloc.grant)
            placements.append(alloc)
            used[row] = True
            waiting.pop(0)
    return ""


def _preference_keys(trial: ClusterState, pod: PodRequest, rows: np.ndarray, k: np.ndarray, used: np.ndarray,
                     zone_of: np.ndarray, rack_of: np.ndarray, count: int, models: np.ndarray, policy: Policy,
                     ctx: PolicyContext) -> list[np.ndarray]:
    """np.lexsort keys, least significant first: rank for criteria 2-6 of the module docstring."""
    zones, racks = zone_of[rows], rack_of[rows]
    zone_cap = np.bincount(zones, weights=k, minlength=zones.max(initial=0) + 1)[zones]
    rack_cap = np.bincount(racks, weights=k, minlength=racks.max(initial=0) + 1)[racks]
    gang_zones = np.isin(zones, zone_of[np.flatnonzero(used)])
    gang_racks = np.isin(racks, rack_of[np.flatnonzero(used)])
    fit = filters.fit(trial, pod, rows, models)
    score = np.full(len(rows), -np.inf)
    if fit.fits.any():
        score[fit.fits] = policy.node_scores(trial, pod, rows[fit.fits], fit.slot_fit[fit.fits], ctx)
    names = np.array([trial.names[r] for r in rows.tolist()], dtype=object)
    name_rank = np.argsort(np.argsort(names, kind="stable"), kind="stable")
    links = _free_nvlinks(trial, rows, fit.slot_fit) if pod.gpus > 1 else np.zeros(len(rows), np.int64)
    rack_holds, zone_holds = rack_cap >= count, zone_cap >= count
    # A domain that holds the whole group: the smallest such (best fit); else the largest (fewest domains).
    rack_fit = np.where(rack_holds, rack_cap, -rack_cap)
    zone_fit = np.where(zone_holds, zone_cap, -zone_cap)
    return [name_rank, -score, -links, racks, zones, rack_fit, zone_fit, -_int(rack_holds), -_int(zone_holds),
            -_int(gang_racks), -_int(gang_zones), -k, -_int(used[rows])]


def _next_index(order: np.ndarray, position: int, taken: np.ndarray, k: np.ndarray) -> tuple[int, int] | None:
    while position < len(order):
        i = int(order[position])
        position += 1
        if not taken[i] and k[i] > 0:
            return position - 1, i
    return None


def _best_fit(rows: np.ndarray, k: np.ndarray, taken: np.ndarray, used: np.ndarray, zone_of: np.ndarray,
              rack_of: np.ndarray, left: int, keys: list[np.ndarray]) -> int:
    """Among unused nodes that take all `left`, the one in the gang's rack/zone with the fewest copies."""
    able = np.flatnonzero(~taken & ~used[rows] & (k >= left))
    gang_zones = np.isin(zone_of[rows[able]], zone_of[np.flatnonzero(used)])
    gang_racks = np.isin(rack_of[rows[able]], rack_of[np.flatnonzero(used)])
    name_rank, neg_score, neg_links = keys[0][able], keys[1][able], keys[2][able]
    best = np.lexsort([name_rank, neg_score, neg_links, k[able], -_int(gang_racks), -_int(gang_zones)])
    return int(able[best[0]])


def _free_nvlinks(state: ClusterState, rows: np.ndarray, slot_fit: np.ndarray) -> np.ndarray:
    """int64 [B]: NVLink links between the GPUs of each row that could take the pod."""
    bits = np.left_shift(np.uint64(1), np.arange(state.slots, dtype=np.uint64))
    free_mask = np.bitwise_or.reduce(np.where(slot_fit, bits, np.uint64(0)), axis=1)
    links = state.nvlink[rows] & free_mask[:, None]
    return np.where(slot_fit, _popcount(links), 0).sum(1) // 2


def _int(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.int64)


def _popcount(values: np.ndarray) -> np.ndarray:
    count = getattr(np, "bitwise_count", None)
    if count is not None:
        return count(values).astype(np.int64)
    as_bytes = values.astype(np.uint64).view(np.uint8).reshape(*values.shape, 8)
    return np.unpackbits(as_bytes, axis=-1).sum(-1).astype(np.int64)


def _describe(pod: PodRequest) -> str:
    if pod.gpus:
        return f"{pod.gpus} whole GPU{'s' if pod.gpus > 1 else ''} on one node"
    if pod.is_share:
        return f"{pod.gpu_milli} milli-GPU"
    return f"{pod.cpu_milli} milli-CPU"
