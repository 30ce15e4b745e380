"""Demo mode's page: sign in as any user and watch the count (only with --demo)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web


async def demo_page(request: web.Request) -> web.Response:
    page = resources.files("pns_sio").joinpath("static/demo.html").read_text("utf-8")
    return web.Response(text=page, content_type="text/html")


async def to_demo(request: web.Request) -> web.Response:
    raise web.HTTPFound("/demo")


def add_demo_routes(app: web.Application) -> None:
    app.router.add_get("/demo", demo_page)
    app.router.add_get("/", to_demo)
