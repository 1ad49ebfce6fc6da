"""The one door to the Kubernetes API: the official (synchronous) `kubernetes` client, run on threads.

Every API call gpusched makes goes through `KubeClient.call`, which runs the client's blocking call
on a small thread pool of its own and hands back the plain API JSON (`_preload_content=False`:
dicts in camelCase, exactly what `scheduler.core.request.parse_pod` and `nodeinfo.node_from_api`
read, and no generated model classes on the hot path). Failures come back as one exception type,
`ApiError` (an answer that is not JSON included), carrying the HTTP code and the Status reason, so callers branch on `code` and never on
client internals. Watch streams are opened here too (`open_watch`) and read by `reflector.py`.

Why the sync client and threads, not kubernetes_asyncio: docs/architecture.md, "The Kubernetes
adapter". The rule that makes it safe: nothing here touches the Engine; results are awaited on
the event loop, and only the loop thread calls into the core.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

log = logging.getLogger(__name__)

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class KubeConfigError(ValueError):
    """No usable credentials (bad kubeconfig, not in a cluster); the message says which."""


class ApiError(Exception):
    """A call the API server refused or that never reached it (`code` 0)."""

    def __init__(self, code: int, reason: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}" if code else message)
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying: throttled, a server-side hiccup, or the connection itself."""
        return self.code in (0, 429) or self.code >= 500

    @classmethod
    def from_exception(cls, e: BaseException) -> ApiError:
        if isinstance(e, ApiException):
            status = _status_body(getattr(e, "body", None))
            retry = None
            headers = getattr(e, "headers", None) or {}
            if headers.get("Retry-After", "").isdigit():
                retry = float(headers["Retry-After"])
            return cls(int(e.status or 0), str(status.get("reason") or e.reason or ""),
                       str(status.get("message") or e.reason or ""), retry_after=retry)
        if isinstance(e, orjson.JSONDecodeError):  # a proxy's error page, a truncated body: as if unanswered
            return cls(0, "InvalidResponse", f"the answer is not JSON: {e}")
        return cls(0, "ConnectionError", f"{type(e).__name__}: {e}")


def _status_body(body: object) -> dict[str, Any]:
    if isinstance(body, bytes | str) and body:
        try:
            value = orjson.loads(body)
            return value if isinstance(value, dict) else {}
        except orjson.JSONDecodeError:
            return {}
    return {}


def load_configuration(*, kubeconfig: str | None = None, in_cluster: bool = False,
                       context: str | None = None) -> k8s.Configuration:
    """Client configuration from a kubeconfig file or the pod's service account."""
    configuration = k8s.Configuration()
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context,
                                        client_configuration=configuration)
    except (ConfigException, OSError, TypeError, ValueError) as e:
        where = "the in-cluster service account" if in_cluster else kubeconfig
        raise KubeConfigError(f"cannot use {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return configuration


@dataclass(frozen=True)
class ClientSettings:
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 15.0
    threads: int = 8
    """Blocking calls in flight at once (watches have threads of their own)."""


class KubeClient:
    """Typed API groups of the official client, and `call` to run one of their methods off the loop."""

    def __init__(self, configuration: k8s.Configuration, *, settings: ClientSettings = ClientSettings()) -> None:
        self.settings = settings
        self.api_client = k8s.ApiClient(configuration)
        self.core = k8s.CoreV1Api(self.api_client)
        self.coordination = k8s.CoordinationV1Api(self.api_client)
        self.custom = k8s.CustomObjectsApi(self.api_client)
        self._executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="kube-api")
        self.on_call: list[Callable[[str, int], None]] = []
        """Observers of each call's outcome (operation, HTTP code; 0 = no answer): metrics."""

    async def call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run `method(*args, **kwargs)` on the API thread pool; the response body as a dict."""
        kwargs.setdefault("_request_timeout", (self.settings.connect_timeout_s, self.settings.request_timeout_s))
        kwargs["_preload_content"] = False
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self._executor, functools.partial(_blocking, method, args, kwargs))
        except (ApiException, urllib3.exceptions.HTTPError, OSError, orjson.JSONDecodeError) as e:
            error = ApiError.from_exception(e)
            self._observe(operation, error.code)
            raise error from None
        self._observe(operation, 200)
        return body

    def open_watch(self, method: Callable[..., Any], **kwargs: Any) -> urllib3.response.BaseHTTPResponse:
        """Blocking: start a watch request and return the streaming response (reflector threads only)."""
        try:
            return method(watch=True, allow_watch_bookmarks=True, _preload_content=False, **kwargs)
        except ApiException as e:
            raise ApiError.from_exception(e) from None

    def _observe(self, operation: str, code: int) -> None:
        for observer in self.on_call:
            observer(operation, code)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.api_client.close()


def _blocking(method: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    response = method(*args, **kwargs)
    try:
        data = response.data
    finally:
        response.release_conn()
    if not data:
        return {}
    value = orjson.loads(data)
    return value if isinstance(value, dict) else {"items": value}
