"""The aiohttp application: routes, and each handler a few lines (decode, call, encode).

Status codes: kube-scheduler accepts only 200, so every verdict and every refused bind is a 200
with an `Error` field; a body that is not an extender message at all is a 400 with a one-line
reason (it did not come from kube-scheduler); a body that does not arrive in time is a 408
(`slow_clients`). Nothing a client sends can produce a 500 or change the books. Should a handler still raise (a bug), the verb answers 200 with an `Error`
(logged with its traceback): kube-scheduler then retries the pod, as after any extender error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.extender import simulated_time as simulated
from scheduler.extender import wire
from scheduler.extender.rehearser import rehearsing
from scheduler.extender.service import ExtenderService, ReleaseRefused
from scheduler.extender.slow_clients import DEFAULT_LIMITS, HttpLimits

log = logging.getLogger(__name__)
SERVICE = web.AppKey("service", ExtenderService)
MAX_BODY = 64 * 1024 * 1024
"""Full NodeLists (nodeCacheCapable: false) run to megabytes; aiohttp's default 1 MiB is too small."""

_JSON = "application/json"


def create_app(service: ExtenderService, *, prefix: str = "", limits: HttpLimits = DEFAULT_LIMITS,
               release_verb: bool = True, simulated_time: bool = False) -> web.Application:
    """`release_verb`: serve `POST /release` (a static cluster's only way to learn that a pod ended;
    never in a live cluster, where the pod watch alone releases, and a release by anyone else would
    give a running pod's GPUs away twice). `simulated_time`: serve the `simulated_time` verbs (a
    simulation's extender, never a cluster's)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[limits.middleware()])
    app[SERVICE] = service
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    app.router.add_post(f"{prefix}/filter", _verb("filter", wire.decode_extender_args, _filter,
                                                  wire.encode_filter_error))
    app.router.add_post(f"{prefix}/prioritize", _verb("prioritize", wire.decode_extender_args, _prioritize,
                                                      _prioritize_error))
    app.router.add_post(f"{prefix}/bind", _verb("bind", wire.decode_binding_args, _bind, wire.encode_binding_result))
    app.router.add_post(f"{prefix}/preempt", _verb("preempt", wire.decode_preemption_args, _preempt,
                                                   _preempt_error))
    if release_verb:
        app.router.add_post(f"{prefix}/release", _verb("release", _decode_release, _release,
                                                       wire.encode_binding_result))
    if simulated_time:
        app.router.add_post(f"{prefix}/clock", _verb("clock", simulated.decode_clock, simulated.advance,
                                                     wire.encode_binding_result))
        app.router.add_post(f"{prefix}/pending", _verb("pending", simulated.decode_pending, simulated.pending,
                                                       wire.encode_binding_result))
        app.router.add_post(f"{prefix}/gpu-health", _verb("gpu-health", simulated.decode_gpu_health,
                                                          simulated.set_gpu_health, wire.encode_binding_result))
        service.extra_state.append(lambda: simulated.state_section(service))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/state", _state)
    app.cleanup_ctx.append(_sweeper)
    app.cleanup_ctx.append(_rehearser)
    return app


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Release gang reservations past their deadline every `sweep_interval_s` (filters also do, lazily)."""
    service = app[SERVICE]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(service.sweep_interval_s)
            try:
                service.expire()
            except Exception:  # a bug must not stop the sweeping; it is logged with its traceback
                log.exception("releasing expired gang reservations failed")

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _rehearser(app: web.Application) -> AsyncIterator[None]:
    """Play the policies' rehearsals off the scheduling path (`rehearser`), where the engine asks for that."""
    service = app[SERVICE]

    def played(verdict, took: float) -> None:
        service.metrics.rehearsals.labels("terms" if verdict.candidate_wins else "fgd").observe(took)

    async with rehearsing(service.engine.rehearsals, played):
        yield


def _verb(name: str, decode: Callable, handle: Callable[[ExtenderService, object], Awaitable[bytes] | bytes],
          error: Callable[[str], bytes]):
    """A verb's handler: decode (400 on a malformed body), handle, encode; `error` encodes the
    verb's answer for a failure of our own."""
    async def handler(request: web.Request) -> web.Response:
        service = request.app[SERVICE]
        started = time.perf_counter()
        body = await request.read()
        try:
            args = decode(body)
        except wire.WireError as e:
            service.metrics.bad_requests.labels(name).inc()
            return web.Response(status=400, body=orjson.dumps({"Error": f"{name}: {e}"}), content_type=_JSON)
        try:
            result = handle(service, args)
            if not isinstance(result, bytes):
                result = await result
        except Exception as e:  # a bug: never a 500 to kube-scheduler; the traceback goes to the log
            log.exception("%s failed", name)
            result = error(f"gpusched {name} failed: internal error ({type(e).__name__}: {e})")
        service.metrics.latency.labels(name).observe(time.perf_counter() - started)
        return web.Response(body=result, content_type=_JSON)

    return handler


def _prioritize_error(message: str) -> bytes:
    return wire.encode_host_priorities([])  # HostPriorityList has no Error: no scores, kube-scheduler's decide


def _preempt_error(message: str) -> bytes:
    return wire.encode_preemption_result({}, {})  # no victims: nothing is evicted on a failure of ours


def _filter(service: ExtenderService, args) -> bytes:
    return service.filter(args)


def _prioritize(service: ExtenderService, args) -> bytes:
    return service.prioritize(args)


async def _bind(service: ExtenderService, args) -> bytes:
    return await service.bind(args)


def _preempt(service: ExtenderService, args) -> bytes:
    return service.preempt(args)


def _decode_release(body: bytes) -> str:
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise wire.WireError("body is not JSON") from None
    uid = fields.get("PodUID") if isinstance(fields, dict) else None
    if not isinstance(uid, str) or not uid:
        raise wire.WireError("'PodUID' must be a non-empty string")
    return uid


async def _release(service: ExtenderService, uid) -> bytes:
    try:
        alloc = await service.release(uid)
    except ReleaseRefused as e:
        return orjson.dumps({"Error": str(e)})
    return orjson.dumps({"Error": "" if alloc else f"no pod with UID {uid} holds an allocation"})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _readyz(request: web.Request) -> web.Response:
    if request.app[SERVICE].ready:
        return web.Response(text="ready")
    return web.Response(status=503, text="not ready: cache not synced")


async def _metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[SERVICE].metrics.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _state(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[SERVICE].state(), option=orjson.OPT_INDENT_2),
                        content_type=_JSON)
