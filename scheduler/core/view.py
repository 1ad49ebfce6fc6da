"""The engine's books as plain data: the body of `GET /state` and of `gpusched explain`.

Derived only from nodes and allocations, in a fixed order, so two engines with the same books
(one restarted from the other's record) render byte-identical views.
"""

from __future__ import annotations

from typing import Any

from scheduler.core.engine import Engine


def state_view(engine: Engine) -> dict[str, Any]:
    state = engine.state
    nodes = []
    for name in sorted(n for n in state.names if n):
        row = state.index[name]
        spec = state.specs[row]
        assert spec is not None
        gpus = []
        holders: dict[int, list[str]] = {}
        for alloc in sorted(engine.allocations_on(name), key=lambda a: (a.namespace, a.name)):
            for slot in alloc.slots:
                holders.setdefault(slot, []).append(alloc.key)
        for gpu in spec.gpus:
            s = gpu.index
            gpus.append({
                "index": s, "uuid": gpu.uuid, "model": gpu.model, "sharing": gpu.sharing.label,
                "healthy": gpu.healthy, "migEnabled": gpu.mig_enabled,
                "usedMilli": int(1000 - state.free_milli[row, s]),
                "usedMemoryMiB": int(state.gpu_memory[row, s] - state.free_memory[row, s]),
                "pods": holders.get(s, []),
            })
        entry: dict[str, Any] = {
            "name": name, "gpus": gpus,
            "cpuMilli": int(state.cpu_total[row]), "usedCpuMilli": int(state.cpu_total[row] - state.cpu_free[row]),
            "memoryMiB": int(state.mem_total[row]), "usedMemoryMiB": int(state.mem_total[row] - state.mem_free[row]),
        }
        if spec.unavailable_reason:
            entry["unavailable"] = spec.unavailable_reason
        nodes.append(entry)
    orphans = sorted(a.key for a in engine.allocations.values() if a.node not in state.index)
    return {
        "policy": engine.settings.policy,
        "nodes": nodes,
        "pods": len(engine.allocations),
        "podsOnUnknownNodes": orphans,
    }
