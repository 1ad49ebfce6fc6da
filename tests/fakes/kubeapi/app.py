"""The HTTP face of the fake: one aiohttp handler that logs, applies faults, routes and encodes.

Routing is a table from (method, addresses a named object, subresource) to a verb; a method the table does
not list for a path is 405 MethodNotAllowed, an unknown path is 404, as on the real server. Handlers stay a
few lines: decode, call `ApiServer` (or a subresource, or the watch stream), encode.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import errors, listing, subresources, wire
from .api import ApiServer, Reply
from .faults import Faults, RecordedRequest
from .resources import Target, parse_path
from .watch import WatchRegistry, serve_watch

# (method, names an object, subresource) -> verb
_VERBS = {
    ("GET", False, None): "list", ("POST", False, None): "create", ("DELETE", False, None): "deletecollection",
    ("GET", True, None): "get", ("PUT", True, None): "update", ("PATCH", True, None): "patch",
    ("DELETE", True, None): "delete",
    ("GET", True, "status"): "get", ("PUT", True, "status"): "update", ("PATCH", True, "status"): "patch",
    ("POST", True, "binding"): "create", ("POST", True, "eviction"): "create",
}


def build_app(api: ApiServer, *, faults: Faults, log: list[RecordedRequest], watches: WatchRegistry,
              bookmark_interval: float) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        query = dict(request.query)
        log.append(RecordedRequest(request.method, request.path, query, _loggable(raw)))
        try:
            fault = faults.take(request.method, request.path)
            if fault is not None:
                await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    raise errors.injected(fault.status, fault.message, retry_after=fault.retry_after)
            if request.path == "/version":
                return web.json_response(_VERSION)
            target = parse_path(request.path)
            verb = _verb(request.method, target, query)
            if verb == "watch":
                return await serve_watch(request, api.store, target, query, registry=watches,
                                         bookmark_interval=bookmark_interval)
            reply = _call(api, verb, target, raw, request.content_type, query)
            return web.json_response(reply.body, status=reply.status, dumps=_dumps)
        except errors.ApiError as error:
            return web.json_response(error.status(), status=error.code, headers=error.headers, dumps=_dumps)

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _verb(method: str, target: Target, query: dict[str, str]) -> str:
    verb = _VERBS.get((method, target.name is not None, target.subresource))
    if verb == "list" and listing.flag(query, "watch"):
        verb = "watch"
    if verb is None or verb not in target.resource.verbs:
        raise errors.method_not_allowed()
    return verb


def _call(api: ApiServer, verb: str, target: Target, raw: bytes, content_type: str,
          query: dict[str, str]) -> Reply:
    body = wire.decode_json(raw)
    special: dict[tuple[str, str | None], Callable[[], Reply]] = {
        ("bindings", None): lambda: subresources.bind(api, target.namespace or "", None, body),
        ("pods", "binding"): lambda: subresources.bind(api, target.namespace or "", target.name, body),
        ("pods", "eviction"): lambda: subresources.evict(api, target.namespace or "", target.name or "", body),
    }
    if verb == "create" and (target.resource.plural, target.subresource) in special:
        return special[(target.resource.plural, target.subresource)]()
    if verb == "patch":
        return api.patch(target, body, content_type, query)
    handlers: dict[str, Callable[[], Reply]] = {
        "get": lambda: api.get(target, query), "list": lambda: api.list(target, query),
        "create": lambda: api.create(target, body, query), "update": lambda: api.update(target, body, query),
        "delete": lambda: api.delete(target, body, query),
        "deletecollection": lambda: api.delete_collection(target, body, query),
    }
    return handlers[verb]()


def _loggable(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


_VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0-gpusched-fake", "platform": "linux/amd64"}
