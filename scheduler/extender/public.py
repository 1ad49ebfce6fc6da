"""The listener other pods reach: the admission webhook, probes and metrics; never the verbs.

The extender's verbs (filter, bind, ...) listen on loopback for the kube-scheduler in the same
pod: anyone who could reach them could bind pods. This second listener, on the pod IP, serves
only what the API server (`POST /mutate`), the kubelet (`/healthz`, `/readyz`) and Prometheus
(`/metrics`) need, over TLS when a certificate is given (the API server calls webhooks only
over HTTPS).
"""

from __future__ import annotations

import ssl

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.extender.server import RunningServer
from scheduler.extender.service import ExtenderService
from scheduler.extender.slow_clients import DEFAULT_LIMITS, HttpLimits
from scheduler.extender.webhook import WebhookSettings, add_webhook_routes


def create_public_app(service: ExtenderService, *, webhook: WebhookSettings,
                      limits: HttpLimits = DEFAULT_LIMITS) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[limits.middleware()])

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        if service.ready:
            return web.Response(text="ready")
        return web.Response(status=503, text="not ready: cache not synced")

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(service.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_webhook_routes(app, settings=webhook, registry=service.metrics.registry)
    return app


async def start_public(service: ExtenderService, *, webhook: WebhookSettings, host: str, port: int,
                       ssl_context: ssl.SSLContext | None, limits: HttpLimits = DEFAULT_LIMITS) -> RunningServer:
    runner = web.AppRunner(create_public_app(service, webhook=webhook, limits=limits), access_log=None,
                           **limits.runner_options())
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    sockets = site._server.sockets if site._server else []  # the bound port when port=0
    bound = sockets[0].getsockname()[1] if sockets else port
    scheme = "https" if ssl_context else "http"
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return RunningServer(runner, f"{scheme}://{shown}:{bound}")
