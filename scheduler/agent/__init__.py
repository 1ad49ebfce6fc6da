"""The gpusched node agent (DESIGN §3 "What the node agent publishes", §4 "How a container
actually gets its GPU"): a DaemonSet process on every GPU node.

Layers, from the hardware up:
- `readings`      what one look at the GPUs returns (plain frozen values, no NVML types);
- `nvml_source`   the `NvmlSource` interface and the real pynvml reader; `fake_nvml` the
                  YAML-driven fake behind the same interface;
- `health`        the pure XID / ECC / remapped-rows / fell-off-the-bus state machine;
- `inventory`     pure: readings + health + sharing mode -> the node annotation entries;
- `mps`, `proc`   the two small host look-ups (MPS pipe directory, /proc cgroups of a PID);
- `podresources/` the kubelet pod-resources v1 gRPC client;
- `records`       pure: a Pod API object -> its GPU record;
- `reconcile`     pure: records vs. what the kubelet and NVML say -> corrections and findings;
- `publisher`     the only module here that talks to the Kubernetes API;
- `exporter`      Prometheus metrics;
- `runner`        the loop that ties them together (clock and sleep injected).
"""
