"""Manifests to the pods their controllers would create, for `gpusched explain`.

A user's workload is rarely a bare Pod: a gang is a Job, a JobSet or a PyTorchJob, often in a
multi-document file with its PodGroup and a Service. This module reads such a file and expands
each workload into its pods, named as the controller names them:

    Pod          itself (a `generateName` gets a suffix); a document without a kind is a Pod
    Job          min(parallelism, completions) pods from spec.template (batch/v1 defaults: 1 and
                 parallelism); Indexed: <job>-<index>-<suffix>, NonIndexed: <job>-<suffix>
    JobSet       per replicatedJob, `replicas` Jobs named <jobset>-<replicatedJob>-<n> (Indexed,
                 as JobSet's webhook defaults them), each expanded as a Job
    PyTorchJob   per replica type (Master first), `replicas` pods <job>-<type>-<index>; with
                 spec.runPolicy.schedulingPolicy, the PodGroup the training operator creates
                 for gang scheduling (named after the job, minMember = minAvailable, else
                 every replica) and its label on each pod, unless the file has them already
    Deployment   `replicas` pods (default 1) <deployment>-<template hash>-<suffix>
    ReplicaSet   `replicas` pods <replicaset>-<suffix>
    StatefulSet  `replicas` pods <statefulset>-<ordinal>, in ordinal order
    PodGroup     no pods: its minMember sizes the gang whose pods carry its name
    List         its items

Kubernetes draws the 5-character suffix at random; here it is a hash of the pod's identity, so
the same file always gives the same names. The labels and annotations a controller adds are added
too (job name, completion index, replica type and index); everything gang membership depends on
comes from the pod template, as in the cluster. Kinds that create no pods (Service, Namespace,
...) are skipped and named (a Namespace's labels are kept: they name its pods' team); any other
kind is an error. Nothing here knows about placement.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scheduler.configfile import PodGroup
from scheduler.core.contract import POD_GROUP_LABEL

NO_PODS = frozenset({"Namespace", "Service", "ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim",
                     "ResourceQuota", "LimitRange", "PodDisruptionBudget", "NetworkPolicy", "Role", "RoleBinding"})
"""Kinds a workload file often carries that create no pods: skipped, and said so."""
WORKLOAD_KINDS = ("Pod", "Job", "JobSet", "PyTorchJob", "Deployment", "StatefulSet", "ReplicaSet", "PodGroup", "List")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The alphabet of Kubernetes' generated name suffixes (apimachinery's utilrand)."""
_UID_NAMESPACE = uuid.UUID("6f1d7a52-5c1e-4f2a-9a53-6b0b8f0e3c11")


class ManifestError(ValueError):
    """A document that cannot be expanded; the message says which one and why, in one line."""


@dataclass(frozen=True)
class Workload:
    """One object of the file and the pods its controller would create, in creation order."""

    kind: str
    namespace: str
    name: str
    line: int
    """Where its document starts in the file (1-based)."""
    pods: tuple[dict[str, Any], ...]
    """Pod API JSON (metadata with a deterministic uid, the template's spec)."""

    @property
    def key(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Manifests:
    workloads: list[Workload] = field(default_factory=list)
    pod_groups: list[PodGroup] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """"Kind namespace/name" of each document that creates no pods."""
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Labels of the file's Namespaces: a namespace's `gpusched.io/team` is its pods' team."""
    inferred_groups: list[PodGroup] = field(default_factory=list)
    """PodGroups a controller in the file would create (a PyTorchJob's schedulingPolicy); an
    explicit PodGroup of the same name in the file wins."""

    def undeclared(self) -> list[PodGroup]:
        """The inferred PodGroups that the file does not declare itself."""
        declared = {(g.namespace, g.name) for g in self.pod_groups}
        return [g for g in self.inferred_groups if (g.namespace, g.name) not in declared]

    def groups(self) -> list[PodGroup]:
        return [*self.pod_groups, *self.undeclared()]


def load_manifests(path: str | Path) -> Manifests:
    """Every document of a YAML (or JSON) file, expanded. Raises ManifestError with the path."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ManifestError(f"{path}: {e.strerror or e}") from None
    out = Manifests()
    try:
        for number, (line, doc) in enumerate(_documents(text), 1):
            try:
                _expand(doc, line, out)
            except ManifestError as e:
                raise ManifestError(f"{path}: document {number} (line {line}): {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{path}: not valid YAML{where}: {what}") from None
    if not out.workloads:
        found = f" (only {', '.join(out.skipped)})" if out.skipped else ""
        raise ManifestError(f"{path}: no workload found{found}; expected one of {', '.join(WORKLOAD_KINDS[:4])}")
    return out


def _documents(text: str) -> Iterator[tuple[int, Any]]:
    """(first line, data) of each non-empty document."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None:
                yield node.start_mark.line + 1, data
    finally:
        loader.dispose()


def _expand(doc: Any, line: int, out: Manifests) -> None:
    if not isinstance(doc, Mapping):
        raise ManifestError("not an object (a Kubernetes manifest is a mapping with kind and metadata)")
    kind = doc.get("kind", "Pod")  # a bare pod spec, as `explain` has always taken
    if not isinstance(kind, str) or not kind:
        raise ManifestError("kind must be a non-empty string")
    if kind == "List":
        items = doc.get("items")
        if not isinstance(items, list):
            raise ManifestError("List: items must be a list")
        for item in items:
            _expand(item, line, out)
        return
    meta = _object(doc.get("metadata"), f"{kind}: metadata")
    name = meta.get("name")
    namespace = meta.get("namespace") or "default"
    if kind == "Pod" and not name and isinstance(meta.get("generateName"), str):
        name = meta["generateName"] + _suffix(namespace, meta["generateName"])
    if not isinstance(name, str) or not name or not isinstance(namespace, str):
        raise ManifestError(f"{kind}: metadata.name (and namespace, if given) must be non-empty strings")
    what = f"{kind} {namespace}/{name}"
    if kind in NO_PODS:
        out.skipped.append(what)
        if kind == "Namespace":
            labels = _object(meta.get("labels"), f"{what}: metadata.labels")
            out.namespace_labels[name] = {str(k): str(v) for k, v in labels.items()}
        return
    spec = _object(doc.get("spec"), f"{what}: spec")
    if kind == "PodGroup":
        out.pod_groups.append(PodGroup(namespace, name, _count(spec, "minMember", what, default=None, low=1)))
        return
    expand = _EXPANDERS.get(kind)
    if expand is None:
        raise ManifestError(f"unknown kind {kind!r} ({what}); explain understands {', '.join(WORKLOAD_KINDS)} "
                            f"and skips {', '.join(sorted(NO_PODS))}")
    pods = tuple(expand(doc, namespace, name, what))
    if kind == "PyTorchJob":
        group = _pytorchjob_group(doc, namespace, name, len(pods), what)
        if group is not None:
            out.inferred_groups.append(group)
            for pod in pods:
                pod["metadata"]["labels"].setdefault(POD_GROUP_LABEL, name)
    out.workloads.append(Workload(kind, namespace, name, line, pods))


def _pod(doc: Mapping[str, Any], namespace: str, name: str, what: str) -> list[dict[str, Any]]:
    pod = copy.deepcopy(dict(doc))
    pod["metadata"] = {**pod.get("metadata", {}), "name": name, "namespace": namespace}
    pod["metadata"].setdefault("uid", _uid(namespace, name))
    return [pod]


def _job(doc: Mapping[str, Any], namespace: str, name: str, what: str, *, indexed_by_default: bool = False,
         labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    spec = _object(doc.get("spec"), f"{what}: spec")
    template = _template(spec, what)
    parallelism = _count(spec, "parallelism", what, default=1, low=0)
    completions = _count(spec, "completions", what, default=None, low=0)
    count = 0 if spec.get("suspend") is True else min(parallelism, completions if completions is not None else parallelism)
    mode = spec.get("completionMode") or ("Indexed" if indexed_by_default else "NonIndexed")
    if mode not in ("Indexed", "NonIndexed"):
        raise ManifestError(f"{what}: spec.completionMode must be Indexed or NonIndexed, got {mode!r}")
    job_labels = {"batch.kubernetes.io/job-name": name, "job-name": name, **(labels or {})}
    pods = []
    for index in range(count):
        if mode == "Indexed":
            stem = f"{name}-{index}-"
            extra_labels = {**job_labels, "batch.kubernetes.io/job-completion-index": str(index)}
            extra_annotations = {"batch.kubernetes.io/job-completion-index": str(index)}
        else:
            stem, extra_labels, extra_annotations = f"{name}-", job_labels, {}
        pod_name = stem + _suffix(namespace, f"{stem}{index}")
        pods.append(_from_template(template, namespace, pod_name, extra_labels, extra_annotations))
    return pods


def _jobset(doc: Mapping[str, Any], namespace: str, name: str, what: str) -> list[dict[str, Any]]:
    spec = _object(doc.get("spec"), f"{what}: spec")
    replicated = spec.get("replicatedJobs")
    if not isinstance(replicated, list) or not replicated:
        raise ManifestError(f"{what}: spec.replicatedJobs must be a non-empty list")
    pods = []
    for i, entry in enumerate(replicated):
        where = f"{what}: spec.replicatedJobs[{i}]"
        entry = _object(entry, where)
        job_name = entry.get("name")
        if not isinstance(job_name, str) or not job_name:
            raise ManifestError(f"{where}: name is missing")
        job = _object(entry.get("template"), f"{where} ({job_name}): template")
        if not job:
            raise ManifestError(f"{where} ({job_name}): template (a Job template) is missing")
        for index in range(_count(entry, "replicas", f"{where} ({job_name})", default=1, low=0)):
            child = f"{name}-{job_name}-{index}"
            labels = {"jobset.sigs.k8s.io/jobset-name": name, "jobset.sigs.k8s.io/replicatedjob-name": job_name,
                      "jobset.sigs.k8s.io/job-index": str(index)}
            pods += _job(job, namespace, child, f"{what}: Job {child}", indexed_by_default=True, labels=labels)
    return pods


def _pytorchjob(doc: Mapping[str, Any], namespace: str, name: str, what: str) -> list[dict[str, Any]]:
    spec = _object(doc.get("spec"), f"{what}: spec")
    replicas = _object(spec.get("pytorchReplicaSpecs"), f"{what}: spec.pytorchReplicaSpecs")
    if not replicas:
        raise ManifestError(f"{what}: spec.pytorchReplicaSpecs is missing (Master and/or Worker)")
    order = sorted(replicas, key=lambda kind: (kind != "Master", kind != "Worker", kind))
    pods = []
    for replica_type in order:
        where = f"{what}: {replica_type}"
        entry = _object(replicas[replica_type], where)
        template = _template(entry, where)
        role = replica_type.lower()
        for index in range(_count(entry, "replicas", where, default=1, low=0)):
            labels = {"training.kubeflow.org/job-name": name, "training.kubeflow.org/operator-name":
                      "pytorchjob-controller", "training.kubeflow.org/replica-type": role,
                      "training.kubeflow.org/replica-index": str(index)}
            if replica_type == "Master":
                labels["training.kubeflow.org/job-role"] = "master"
            pods.append(_from_template(template, namespace, f"{name}-{role}-{index}", labels, {}))
    return pods


def _pytorchjob_group(doc: Mapping[str, Any], namespace: str, name: str, replicas: int, what: str) -> PodGroup | None:
    """The PodGroup the training operator creates when the job asks for gang scheduling."""
    run_policy = _object(_object(doc.get("spec"), f"{what}: spec").get("runPolicy"), f"{what}: spec.runPolicy")
    if run_policy.get("schedulingPolicy") is None:
        return None
    policy = _object(run_policy["schedulingPolicy"], f"{what}: spec.runPolicy.schedulingPolicy")
    where = f"{what}: spec.runPolicy.schedulingPolicy"
    return PodGroup(namespace, name, _count(policy, "minAvailable", where, default=max(replicas, 1), low=1))


def _replicated(doc: Mapping[str, Any], namespace: str, what: str, name_of: Callable[[int], str],
                labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """`spec.replicas` pods (default 1) from `spec.template`, the i-th named `name_of(i)`."""
    spec = _object(doc.get("spec"), f"{what}: spec")
    template = _template(spec, what)
    replicas = _count(spec, "replicas", what, default=1, low=0)
    return [_from_template(template, namespace, name_of(i), labels, {}) for i in range(replicas)]


def _deployment(doc: Mapping[str, Any], namespace: str, name: str, what: str) -> list[dict[str, Any]]:
    template_hash = _suffix(namespace, f"{name}/template", length=10)
    stem = f"{name}-{template_hash}-"
    return _replicated(doc, namespace, what, lambda i: stem + _suffix(namespace, f"{stem}{i}"),
                       {"pod-template-hash": template_hash})


def _replicaset(doc: Mapping[str, Any], namespace: str, name: str, what: str) -> list[dict[str, Any]]:
    return _replicated(doc, namespace, what, lambda i: f"{name}-" + _suffix(namespace, f"{name}-{i}"), {})


def _statefulset(doc: Mapping[str, Any], namespace: str, name: str, what: str) -> list[dict[str, Any]]:
    pods = _replicated(doc, namespace, what, lambda i: f"{name}-{i}", {})
    for ordinal, pod in enumerate(pods):
        pod["metadata"]["labels"].update({"statefulset.kubernetes.io/pod-name": pod["metadata"]["name"],
                                          "apps.kubernetes.io/pod-index": str(ordinal)})
    return pods


_EXPANDERS = {"Pod": _pod, "Job": _job, "JobSet": _jobset, "PyTorchJob": _pytorchjob, "Deployment": _deployment,
              "ReplicaSet": _replicaset, "StatefulSet": _statefulset}


def _template(spec: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    template = spec.get("template")
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        raise ManifestError(f"{what}: spec.template (a pod template with a spec) is missing")
    return template


def _from_template(template: Mapping[str, Any], namespace: str, name: str, labels: Mapping[str, str],
                   annotations: Mapping[str, str]) -> dict[str, Any]:
    meta = _object(template.get("metadata"), "template metadata")
    own_labels = _object(meta.get("labels"), "template metadata.labels")
    own_annotations = _object(meta.get("annotations"), "template metadata.annotations")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": _uid(namespace, name),
                         "labels": {**own_labels, **labels}, "annotations": {**own_annotations, **annotations}},
            "spec": copy.deepcopy(dict(template["spec"]))}


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestError(f"{what} must be an object")
    return value


def _count(spec: Mapping[str, Any], key: str, what: str, *, default: int | None, low: int) -> int | None:
    value = spec.get(key, default)
    if value is None and default is None and key == "minMember":
        raise ManifestError(f"{what}: spec.minMember is missing")
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 100_000:
        raise ManifestError(f"{what}: {key} must be an integer from {low} to 100000, got {value!r}")
    return value


def _suffix(namespace: str, stem: str, *, length: int = 5) -> str:
    """Characters in Kubernetes' alphabet, a hash of the name's stem (random in a cluster; a
    Deployment's pod-template-hash is a hash of its template, rendered in the same alphabet)."""
    digest = int.from_bytes(hashlib.blake2b(f"{namespace}/{stem}".encode(), digest_size=8).digest(), "little")
    chars = []
    for _ in range(length):
        digest, i = divmod(digest, len(_SUFFIX_ALPHABET))
        chars.append(_SUFFIX_ALPHABET[i])
    return "".join(chars)


def _uid(namespace: str, name: str) -> str:
    return str(uuid.uuid5(_UID_NAMESPACE, f"{namespace}/{name}"))
