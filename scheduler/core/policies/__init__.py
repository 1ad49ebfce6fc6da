"""Scoring policies: one module each, one table mapping names to them.

A policy answers two questions about a pod that passed the filter:
- `score(state, pod, rows, slot_fit, ctx)`: a float64 score per fitting node row, higher is
  better. Equal scores are true ties (kube-scheduler breaks them at random; we break them by the
  caller's tie-break). Scaling to the extender's 0..10 happens in the wire layer, nowhere else.
- `pick(state, pod, row, slot_fit, ctx)`: which GPU slots of the chosen node the pod gets.
- `explain(state, pod, rows, slot_fit, ctx)`: the same score split into named, weighted terms
  (`base.Breakdown`) whose weighted sum is the score bit for bit (tests/core/test_policy_terms.py),
  for `gpusched explain`. It sits next to `score` and reuses its helpers.

Nothing registers itself on import: `POLICIES` below is the whole list.
"""

from __future__ import annotations

from scheduler.core.policies import (
    bestfit,
    binpack,
    clustering,
    dotprod,
    fgd,
    fgd_plus,
    packing,
    random_fit,
    spread,
)
from scheduler.core.policies.base import Policy, PolicyContext

POLICIES: dict[str, Policy] = {p.name: p for p in (
    binpack.POLICY, spread.POLICY, bestfit.POLICY, fgd.POLICY,
    random_fit.POLICY, dotprod.POLICY, clustering.POLICY, packing.POLICY, *fgd_plus.POLICIES,
)}
DEFAULT_POLICY = "fgd-plus"
"""Leaves less GPU unallocated than FGD on all 17 openb traces (benchmarks/results/policies.md)."""

__all__ = ["DEFAULT_POLICY", "POLICIES", "Policy", "PolicyContext"]
