"""The do-nothing extender of the latency benchmark: parses the body, answers every node.

What a Python aiohttp extender costs before it does any work: the floor the real extender is
compared against. Run: python -m benchmarks.null_extender PORT
"""

from __future__ import annotations

import sys

import orjson
from aiohttp import web


async def filter_all(request: web.Request) -> web.Response:
    args = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps({"Nodes": None, "NodeNames": args["NodeNames"], "FailedNodes": {},
                                           "FailedAndUnresolvableNodes": {}, "Error": ""}),
                        content_type="application/json")


async def prioritize_all(request: web.Request) -> web.Response:
    args = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps([{"Host": n, "Score": 0} for n in args["NodeNames"]]),
                        content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ready")


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/filter", filter_all)
    app.router.add_post("/prioritize", prioritize_all)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
