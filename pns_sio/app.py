"""create_app: one aiohttp application serving Socket.IO, the HTTP API and operations."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .demo import add_demo_routes
from .http_api import NODE, add_routes, api_errors
from .node import Node
from .settings import Settings
from .static_files import add_static_routes


def create_app(settings: Settings | None = None) -> web.Application:
    """Build a node's application; the node starts with the app and stops with it.

    Raises ``SettingsError`` when settings come from the environment and are wrong.
    """
    settings = settings or Settings.from_env()
    node = Node(settings)
    # The body bound is the HTTP API's; Socket.IO polling bodies are far smaller.
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[api_errors])
    app[NODE] = node
    node.sio.attach(app)
    add_routes(app, node)
    add_static_routes(app)
    if settings.demo:
        add_demo_routes(app)
    app.cleanup_ctx.append(_node_lifetime)
    # on_shutdown runs while connections are still open: clients hear pns:disconnect.
    app.on_shutdown.append(_stop_node)
    return app


async def _node_lifetime(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    await node.start()
    yield
    await node.stop()


async def _stop_node(app: web.Application) -> None:
    await app[NODE].stop()
