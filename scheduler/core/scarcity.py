"""How contested each GPU model is by pods that may use only some models (FGD §2.1's gpuspec traces).

A pod that may run anywhere should leave the scarce models to the pods that can run only there.
FGD does not see scarcity: a model is a fragment for the task types that may not use it, so
filling a small pool (say 39 G3 nodes) lowers fragmentation as much as filling a big one, and the
pods tied to the small pool fail once unconstrained pods have taken it.

The pressure on model X, from the task types m of M whose allowed models A_m include X, each with
λ_m its share of M's GPU demand, and free(·) the free milli-GPU of usable GPUs:

    φ_X = Σ_{m: X ∈ A_m} λ_m · free(all) / free(A_m)   −   min over models with free GPU

λ_m · free(all) is what type m will ask of the free capacity if the mix holds; divided by what
its models have free, it is m's demand-to-supply ratio. Types that may use every model add the
same to every φ_X, so the subtracted minimum makes φ = 0 everywhere when no pod is constrained,
and φ_X − φ_Y says how much more contested X is than Y. Placing d milli-GPU on a GPU of model X
costs d · φ_X (milli-GPU), charged by the policy that uses it.

φ_X has a scale: for a pool X that one type m alone is tied to, φ_X = λ_m / (free(X) / free(all)),
m's share of the demand over X's share of the free GPU. At φ_X = 1 the pool holds just what its
pods will ask; fgd-plus charges nothing until some φ reaches it (`OVER_ASKED`).
"""

from __future__ import annotations

import numpy as np

from scheduler.core.fragmentation import TaskMatrix
from scheduler.core.state import ClusterState

OVER_ASKED = 1.0
"""φ_X ≥ 1: the pods tied to X ask more of X than its share of the free GPU (see module doc)."""


def free_by_model(state: ClusterState) -> np.ndarray:
    """float64 [models]: free milli-GPU of usable GPUs per model id."""
    return _per_row(state, np.arange(state.size)).sum(0)


class FreeByModel:
    """`free_by_model` kept current by re-reading only the rows whose version changed since the
    last call: one bind changes one row, and a full pass over 5,000 × 8 GPUs costs a third of a
    millisecond per pod. Sums of integer milli in float64, so the running total stays exact."""

    def __init__(self) -> None:
        self._state: ClusterState | None = None
        self._structure = -1
        self._version = np.zeros(0, np.int64)
        self._per_row = np.zeros((0, 0))
        self._total = np.zeros(0)

    def of(self, state: ClusterState) -> np.ndarray:
        if self._state is not state or self._structure != state.structure_version:
            rows = np.arange(state.size)
            self._state, self._structure = state, state.structure_version
            self._version = state.version[:state.size].copy()
            self._per_row = _per_row(state, rows)
            self._total = self._per_row.sum(0)
            return self._total
        stale = np.flatnonzero(self._version != state.version[:state.size])
        if len(stale):
            fresh = _per_row(state, stale)
            self._total = self._total + (fresh - self._per_row[stale]).sum(0)
            self._per_row[stale] = fresh
            self._version[stale] = state.version[stale]
        return self._total


def _per_row(state: ClusterState, rows: np.ndarray) -> np.ndarray:
    """float64 [len(rows), models]: free milli-GPU of usable GPUs per row and model id."""
    models = len(state.models)
    free = np.where(state.usable[rows], state.free_milli[rows], 0)
    # absent slots (model id -1) hold no free capacity, so any valid bin will do for them
    bins = np.arange(len(rows))[:, None] * models + np.maximum(state.model_id[rows], 0)
    return np.bincount(bins.ravel(), weights=free.ravel(), minlength=len(rows) * models).reshape(len(rows), models)


def constrained(tasks: TaskMatrix) -> bool:
    """Whether some GPU task type of M may not use some model; if none, φ is 0 everywhere."""
    return not tasks.allowed[:-1][:, tasks.wants_gpu].all()


def model_pressure(free: np.ndarray, tasks: TaskMatrix) -> np.ndarray:
    """float64 [models + 1]: φ per model id (see module doc); the last entry (absent slots) is 0.

    `free` is `free_by_model`; `tasks.allowed` has one row per model id plus that last one.
    """
    phi = np.zeros(len(free) + 1)
    demand = tasks.weights * (tasks.milli * tasks.need) * tasks.wants_gpu
    if demand.sum() <= 0 or free.sum() <= 0:
        return phi
    share = demand / demand.sum()
    allowed = tasks.allowed[:len(free)].astype(np.float64)
    supply = free @ allowed
    ratio = np.divide(share * free.sum(), supply, out=np.zeros_like(supply), where=supply > 0)
    phi[:-1] = allowed @ ratio
    phi[:-1] -= phi[:-1][free > 0].min()
    phi[:-1][free <= 0] = 0.0
    return phi
