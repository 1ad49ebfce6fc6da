"""A pod that asks for no GPU prefers nodes that have none, whatever the policy.

On a GPU node such a pod takes CPU and memory that the node's GPU pods need; a policy sees that
only where it counts it (FGD charges it only when the CPU taken would strand a GPU under the
current workload, binpack not at all), so without this a CPU-only pod lands on whichever GPU node
the tie-break names, the scarcest model included.

The preference is half the policy's span: on the extender's scale a GPU node scores at most 5 where
an otherwise equal GPU-less node scores 10. At the shipped weight 5 that is 250 of kube-scheduler's
points (10 per extender point per unit of weight), more than its spreading plugins can give back
(NodeResourcesFit and NodeResourcesBalancedAllocation, weight 1 each: 200 together) and than a
preferred node affinity (weight 2: 200), less than a PreferNoSchedule taint the pod does not
tolerate (TaintToleration, weight 3: 300); required affinities and NoSchedule taints filter first.

In a cluster such a pod reaches the extender only if it requests a managed resource, which a CPU-only
pod does not (kube-scheduler consults an extender with `managedResources` for those pods alone), so
there the node taint of docs/operations.md does this job; here it serves the simulator, `explain`
and any caller that does ask.
"""

from __future__ import annotations

import numpy as np

from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState

PREFERENCE = 0.5
"""Of the policy's span."""


def prefer_gpu_less_nodes(state: ClusterState, pod: PodRequest, rows: np.ndarray, scores: np.ndarray,
                          span: float) -> np.ndarray:
    if pod.wants_gpu:
        return scores
    return scores + PREFERENCE * span * gpu_less(state, rows)


def gpu_less(state: ClusterState, rows: np.ndarray) -> np.ndarray:
    """float64 [B]: 1 where the node has no GPU, else 0."""
    return (state.gpu_count[rows] == 0).astype(np.float64)
