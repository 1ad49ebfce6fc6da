"""The simulator: replays GPU-cluster workloads through the same placement core as the extender,
in-process or through the real HTTP extender, as kube-scheduler would drive it."""
