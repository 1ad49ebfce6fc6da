"""`KubeApiFake`: the fake API server running on loopback, and the controls tests use to shape it.

Threading, on purpose: the server runs its own asyncio event loop in a background thread, so a test may
block its own thread on the synchronous `kubernetes` client (or run its own event loop for
`kubernetes_asyncio` / aiohttp code) without starving the server. `start()` returns once the socket is
listening; `stop()` ends every watch, shuts the server down, closes the loop and joins the thread, so no
thread, socket or port outlives it. It is also a context manager.

The controls talk to the store directly (it is thread-safe) or hop onto the server's loop and wait.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from .api import ApiServer
from .app import build_app
from .faults import Fault, Faults, RecordedRequest
from .resources import resource_for_object, resource_named
from .store import Store
from .watch import WatchRegistry

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class KubeApiFake:
    def __init__(self, *, history_limit: int = 10_000, bookmark_interval: float = 60.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), seed: int = 0) -> None:
        self.store = Store(history_limit=history_limit)
        self.api = ApiServer(self.store, clock=clock, rng=random.Random(seed))
        self.requests: list[RecordedRequest] = []  # appended by the server thread, in arrival order
        self._faults = Faults()
        self._watches = WatchRegistry()
        self._bookmark_interval = bookmark_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.url = ""
        for namespace in SYSTEM_NAMESPACES:  # created as the API would, with phase and name label
            self.api.create_stored(resource_named("namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                                   "metadata": {"name": namespace}})

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> KubeApiFake:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(started, failure), name="kube-api-fake",
                                        daemon=True)
        self._thread.start()
        started.wait(timeout=10)
        if failure or not started.is_set():
            self.stop()
            raise RuntimeError("the fake Kubernetes API server did not start") from (failure or [None])[0]
        return self

    def _serve(self, started: threading.Event, failure: list[BaseException]) -> None:
        assert self._loop is not None and self._socket is not None
        asyncio.set_event_loop(self._loop)
        try:
            app = build_app(self.api, faults=self._faults, log=self.requests, watches=self._watches,
                            bookmark_interval=self._bookmark_interval)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.SockSite(self._runner, self._socket).start())
        except BaseException as exc:
            failure.append(exc)
            return
        started.set()
        self._loop.run_forever()
        # Stopped by stop(): let cancelled handlers finish, then close the loop on its own thread.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def stop(self) -> None:
        """End every watch, shut the server down, and join its thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if thread.is_alive():
                raise RuntimeError("the fake Kubernetes API server's thread did not stop")
        if loop is not None and not loop.is_closed():
            loop.close()  # it never ran (start failed)
        if self._socket is not None:
            self._socket.close()
        self._loop = self._thread = self._socket = None

    async def _shutdown(self) -> None:
        self._watches.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> KubeApiFake:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests do to the cluster ---------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Seed or overwrite an object directly in storage, as if it had always been there.

        No validation, defaulting or admission: the object is stored as given, with uid, creationTimestamp
        and a new resourceVersion filled in, and watchers see it as ADDED or MODIFIED.
        """
        resource = resource_for_object(obj)
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        if resource.namespaced:
            metadata["namespace"] = metadata.get("namespace") or "default"
        key = self.api.key(resource, metadata.get("namespace"), metadata["name"])
        with self.store.atomic():
            existing = self.store.get(key)
            metadata.setdefault("uid", existing["metadata"]["uid"] if existing else _uid())
            metadata.setdefault("creationTimestamp", existing["metadata"]["creationTimestamp"] if existing
                                else self.api.now())
            if resource.has_generation:
                metadata.setdefault("generation", 1)
            return self.store.write(key, stored).obj

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (`kind` is a plural or a Kind: "pods", "Pod", "leases", "PodGroup")."""
        resource = resource_named(kind)
        return self.store.get(self.api.key(resource, namespace, name))

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        resource = resource_named(kind)
        return self.store.items(resource.storage_key, namespace if resource.namespaced else None)

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        """Remove an object outright (no finalizers, no Status), as if etcd lost it; watchers see DELETED."""
        resource = resource_named(kind)
        self.store.remove(self.api.key(resource, namespace, name))

    @property
    def resource_version(self) -> str:
        return str(self.store.resource_version)

    # -- what tests do to the server ----------------------------------------------------------------------

    def compact(self, keep: int = 0) -> None:
        """Forget all but the newest `keep` changes: older resourceVersions now answer 410 Gone."""
        self.store.compact(keep=keep)

    def drop_watches(self) -> int:
        """Reset every open watch connection mid-stream (no final chunk); returns how many there were."""
        if self._loop is None:
            return 0
        return asyncio.run_coroutine_threadsafe(self._drop_watches(), self._loop).result(timeout=10)

    async def _drop_watches(self) -> int:
        return self._watches.drop_all()

    def open_watches(self) -> int:
        return len(self._watches)

    def fail_next(self, method: str, path_regex: str, status: int | None = None, count: int = 1, *,
                  delay: float = 0.0, message: str | None = None, retry_after: int | None = None) -> Fault:
        """Answer the next `count` matching requests with `status` (a Status body), after `delay` seconds.

        `status=None` with a delay only slows the requests down. `method` may be "*". Returns the Fault, whose
        `hits` says how many requests it has answered.
        """
        return self._faults.add(Fault(method.upper(), path_regex, status, count, delay, message, retry_after))

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- how clients reach it -----------------------------------------------------------------------------

    def kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig for plain HTTP on loopback (the token is sent and ignored)."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        target = Path(path)
        target.write_text(json.dumps(config, indent=2))  # JSON is YAML: every kubeconfig loader reads it
        return target

    def configuration(self) -> Any:
        """A `kubernetes.client.Configuration` pointing at the fake."""
        from kubernetes import client  # only the synchronous client's users need it

        configuration = client.Configuration(host=self.url)
        configuration.api_key = {"BearerToken": "fake-token"}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return configuration


def _uid() -> str:
    return str(uuid.uuid4())
