"""Node agent: NVML inventory, health and the node annotation (placeholder until the agent branch lands)."""
