"""Kubernetes adapter: list+watch, binder, events, reclaimer (placeholder until the kube branch lands)."""
