"""Names that users' manifests and tooling rely on (DESIGN §3). Extend, never rename."""

GPU_RESOURCE = "nvidia.com/gpu"
"""Whole GPUs, an integer extended resource advertised by the NVIDIA device plugin."""

MILLI_RESOURCE = "gpusched.io/gpu-milli"
"""A share of one GPU's compute, 1..999 thousandths (resource, `ignoredByScheduler: true`)."""

GPU_MEMORY_RESOURCE = "gpusched.io/gpu-memory"
"""GPU memory in MiB that goes with a share (resource, `ignoredByScheduler: true`)."""

# Pod annotations a user writes.
MODEL_ANNOTATION = "gpusched.io/gpu-model"
SHARING_ANNOTATION = "gpusched.io/sharing"
POLICY_ANNOTATION = "gpusched.io/policy"
GANG_SIZE_ANNOTATION = "gpusched.io/gang-size"
GANG_TIMEOUT_ANNOTATION = "gpusched.io/gang-timeout-seconds"

USER_POD_ANNOTATIONS = frozenset({MODEL_ANNOTATION, SHARING_ANNOTATION, POLICY_ANNOTATION, GANG_SIZE_ANNOTATION,
                                  GANG_TIMEOUT_ANNOTATION})
"""The `gpusched.io/` pod annotations a user writes; every other `gpusched.io/` pod annotation is
gpusched's own (the webhook removes them from a new pod, deploy/'s admission policy keeps others
from changing them)."""
PREFIX = "gpusched.io/"

# Pod labels a user writes.
GANG_LABEL = "gpusched.io/gang"
POD_GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
TEAM_LABEL = "gpusched.io/team"
POD_LABELS = (GANG_LABEL, POD_GROUP_LABEL, TEAM_LABEL)
"""The only pod labels gpusched reads; a parsed pod keeps these and no others."""

# Pod annotations the extender writes at bind: the whole persistent record of an allocation.
ASSIGNED_GPUS_ANNOTATION = "gpusched.io/gpus"
"""Assigned GPU UUIDs, comma-separated, in order."""
GRANTED_MILLI_ANNOTATION = "gpusched.io/gpu-milli"
GRANTED_MEMORY_ANNOTATION = "gpusched.io/gpu-memory"
MPS_THREAD_PCT_ANNOTATION = "gpusched.io/mps-thread-pct"
MPS_MEM_LIMIT_ANNOTATION = "gpusched.io/mps-mem-limit"
BORROWED_ANNOTATION = "gpusched.io/borrowed"
ASSIGNED_NODE_ANNOTATION = "gpusched.io/node"

# Pod annotation the extender writes on a gang member while its gang's plan is reserved.
RESERVATION_ANNOTATION = "gpusched.io/reservation"
"""JSON: the reservation (gang, id, size, times, nodes) and this member's held grant, so a
restarted or standby replica rebuilds the reservation from the pods (scheduler/kube/reservations)."""

# Node annotations the agent writes.
NODE_GPUS_ANNOTATION = "gpusched.io/gpus"
AGENT_HEARTBEAT_ANNOTATION = "gpusched.io/agent-heartbeat"
NODE_DRIVER_ANNOTATION = "gpusched.io/nvidia-driver-version"
"""The NVIDIA driver version the agent's NVML reports (e.g. `550.54.15`)."""
NODE_CUDA_ANNOTATION = "gpusched.io/cuda-version"
"""The highest CUDA version that driver supports (e.g. `12.4`)."""

# GPU feature discovery labels, the fallback for nodes without the agent.
GFD_PRODUCT_LABEL = "nvidia.com/gpu.product"
GFD_MEMORY_LABEL = "nvidia.com/gpu.memory"
GFD_COUNT_LABEL = "nvidia.com/gpu.count"
SHARING_STRATEGY_LABEL = "nvidia.com/gpu.sharing-strategy"

ZONE_LABEL = "topology.kubernetes.io/zone"

MILLI_PER_GPU = 1000
