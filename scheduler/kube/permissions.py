"""Every (API group, resource, verb) the extender's calls need: deploy/'s ClusterRole grants exactly these.

`tests/deploy` checks the rendered ClusterRole `gpusched-extender` against this table, so adding an
API call here without granting it (or granting more than is called) fails a test. Leases are
granted separately, by a namespaced Role limited to the lease names (reference §3.4).
"""

EXTENDER_PERMISSIONS = frozenset({
    # sync.py: list + watch
    ("", "nodes", "get"), ("", "nodes", "list"), ("", "nodes", "watch"),
    ("", "namespaces", "get"), ("", "namespaces", "list"), ("", "namespaces", "watch"),
    ("", "resourcequotas", "get"), ("", "resourcequotas", "list"), ("", "resourcequotas", "watch"),
    ("scheduling.x-k8s.io", "podgroups", "get"), ("scheduling.x-k8s.io", "podgroups", "list"),
    ("scheduling.x-k8s.io", "podgroups", "watch"),
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
    # binder.py: the record, then the Binding
    ("", "pods", "patch"), ("", "pods/binding", "create"),
    # reclaimer.py
    ("", "pods/eviction", "create"),
    # events.py
    ("", "events", "create"), ("", "events", "patch"),
})
