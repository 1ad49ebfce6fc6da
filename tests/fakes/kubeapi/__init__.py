"""A faithful in-process fake of the Kubernetes API server, for the Kubernetes adapter's and the agent's tests.

It serves real HTTP on 127.0.0.1 (a random free port) that the official `kubernetes` client and
`kubernetes_asyncio` drive unmodified: core/v1 nodes, pods (namespaced and all-namespaces), namespaces,
resourcequotas, events and configmaps; events.k8s.io/v1 events (a second view of the same events);
coordination.k8s.io/v1 leases; policy/v1 poddisruptionbudgets; scheduling.x-k8s.io/v1alpha1 podgroups; the
pods/binding, pods/eviction, pods/status and nodes/status subresources. One global resourceVersion, list+watch
with selectors, paging, bookmarks and 410 expiry, optimistic concurrency, the three patch types, and the
validation our code could trip over. Each module's docstring says what it keeps and where it simplifies.

Why not kmock (PyPI, by kopf's author; 0.8 read for this): its `KubernetesEmulator` is an in-memory JSON
store whose lists report `resourceVersion: "..."`, whose watches replay every object and then follow (they
cannot start from a resourceVersion, so there is no 410 to expire), which never answers 409 for a stale
resourceVersion, and which has no subresources (binding, eviction, status). Those are exactly the behaviours
our adapter must be proven against, so the fake is our own.

What it does not do (where a test needs one of these, extend the fake rather than work around it):
- No controllers: no kubelet (pods stay Pending until a test writes pods/status; a pod is deleted at once,
  not after its grace period), no scheduler, no garbage collector (ownerReferences do not cascade), no quota
  controller (ResourceQuota status is what tests write), no ReplicaSets (a PDB takes a controller's scale as
  the most pods of it seen). The namespace controller is immediate: deleting a namespace deletes its content.
- No server-side apply (`application/apply-patch+yaml` is 415), no managedFields, no fieldValidation, no
  protobuf/CBOR, no table output, no discovery beyond `/version`, no legacy `/watch/` paths.
- No authentication or authorisation: tokens are accepted and ignored; no PriorityClasses, LimitRanges or
  webhooks. Schema validation is what `validation` lists, not full OpenAPI validation.

Use (the `kube_api` fixture in `tests/conftest.py` starts and stops one per test):

    def test_something(kube_api):
        core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kube_api.configuration()))
        core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [...]}})
        kube_api.fail_next("POST", r"/binding$", 500)
        assert kube_api.get("pods", "default", "p")["status"]["phase"] == "Pending"
"""

from .faults import Fault, RecordedRequest
from .server import SYSTEM_NAMESPACES, KubeApiFake

__all__ = ["SYSTEM_NAMESPACES", "Fault", "KubeApiFake", "RecordedRequest"]
