"""Real PNS nodes on free loopback ports, in the test's process (aiohttp AppRunner)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pns_sio.app import NODE, create_app
from pns_sio.node import Node
from pns_sio.settings import Settings

from .api import API_TOKEN
from .ports import free_port


class RunningNode:
    """One node serving on 127.0.0.1; stop() and start() again keep its port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.replace(port=settings.port or free_port())
        self.runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def node(self) -> Node:
        assert self.app is not None, "node is not running"
        return self.app[NODE]

    async def start(self) -> RunningNode:
        self.app = create_app(self.settings)
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=5.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.settings.port)
        await site.start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()

    def metric(self, name: str, **labels: str) -> float:
        value = self.node.metrics.registry.get_sample_value(name, labels or None)
        return value or 0.0


def node_settings(**overrides: Any) -> Settings:
    """Settings for a test node: short timeouts so failures show quickly."""
    values: dict[str, Any] = {
        "demo": True,
        "port": 0,
        "ack_timeout": 2.0,
        "store_timeout": 2.0,
        "ping_interval": 5.0,
        "ping_timeout": 5.0,
        "api_token": API_TOKEN,
    }
    values.update(overrides)
    return Settings(**values)


# The start_node fixture: start a node with these settings overrides.
StartNode = Callable[..., Awaitable[RunningNode]]
