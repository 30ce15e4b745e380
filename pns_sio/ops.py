"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (it can serve),
``/metrics`` (Prometheus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .http_api import json_response
from .metrics import Metrics

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


def add_ops_routes(app: web.Application, readiness: Readiness, metrics: Metrics) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready, body = await readiness()
        return json_response(body, status=200 if ready else 503)

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
