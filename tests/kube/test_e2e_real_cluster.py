"""End to end against a real cluster: runs only when KUBECONFIG names a reachable one.

It talks only to the API server that KUBECONFIG names. It needs gpusched deployed there
(`kubectl apply -k deploy/overlays/example`) and at least one node with a free GPU: it creates a
pod asking for one whole GPU with `schedulerName: gpu-scheduler` in a throwaway namespace, waits
until it is bound, checks the record gpusched wrote (`gpusched.io/gpus`, `gpusched.io/node`
matching `spec.nodeName`), and deletes the namespace.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from scheduler.kube.client import KubeConfigError, load_configuration


def _cluster():
    path = os.environ.get("KUBECONFIG")
    if not path:
        pytest.skip("KUBECONFIG is not set: no real cluster to test against")
    try:
        configuration = load_configuration(kubeconfig=path.split(os.pathsep)[0])
    except KubeConfigError as e:
        pytest.skip(f"KUBECONFIG is not usable: {e}")
    from kubernetes import client
    api = client.CoreV1Api(client.ApiClient(configuration))
    try:
        api.get_api_resources(_request_timeout=5)
    except Exception as e:  # unreachable: nothing to test against
        pytest.skip(f"the cluster in KUBECONFIG does not answer: {type(e).__name__}")
    return api


def test_a_gpu_pod_is_bound_with_its_record():
    api = _cluster()
    namespace = f"gpusched-e2e-{uuid.uuid4().hex[:6]}"
    api.create_namespace({"metadata": {"name": namespace}})
    try:
        api.create_namespaced_pod(namespace, {
            "metadata": {"name": "one-gpu"},
            "spec": {"schedulerName": "gpu-scheduler", "restartPolicy": "Never",
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}})
        deadline = time.monotonic() + 120
        while True:
            pod = api.read_namespaced_pod("one-gpu", namespace)
            if pod.spec.node_name:
                break
            assert time.monotonic() < deadline, "the pod was not bound within 2 minutes"
            time.sleep(2)
        annotations = pod.metadata.annotations or {}
        assert annotations.get("gpusched.io/node") == pod.spec.node_name
        assert len(annotations.get("gpusched.io/gpus", "").split(",")) == 1
    finally:
        api.delete_namespace(namespace)
