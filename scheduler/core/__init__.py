"""The pure placement core.

Owns: the cluster as arrays, pod requests, filters, scores, the GPU pick, the engine that
applies decisions to its own books. Must not know: HTTP, Kubernetes objects beyond plain
dicts of their JSON, NVML, the clock, or any randomness it is not handed with a seed.
The import-linter contracts in pyproject.toml keep it so.
"""
