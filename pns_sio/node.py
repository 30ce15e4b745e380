"""A PNS node: the parts ``app.py`` assembled, and how they stop together.

``Node`` builds nothing: ``app.assemble`` gives it every part. It owns what spans
parts: the drain of a graceful stop (refuse, let fetches finish, say goodbye,
disconnect) and the node's readiness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .auth import Authenticator
from .counts import CountService
from .delivery import Delivery
from .errors import SHUTDOWN, StoreUnavailable
from .metrics import Metrics
from .notifier import Notifier
from .realtime import Realtime
from .retention import Retention
from .settings import Settings
from .signals import Signals
from .sio.managers import LocalBroker, RedisBroker
from .sio.server import Server
from .sio.websocket import PNSWebSocket, SlowClientWatchdog
from .store.guarded import GuardedStore
from .tasks import TaskOwner

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0


@dataclass(eq=False)
class Node:
    """Everything one PNS process runs."""

    settings: Settings
    metrics: Metrics
    tasks: TaskOwner
    store: GuardedStore
    broker: LocalBroker | RedisBroker
    counts: CountService
    delivery: Delivery
    signals: Signals
    retention: Retention
    authenticator: Authenticator
    realtime: Realtime
    notifier: Notifier
    watchdog: SlowClientWatchdog
    stopping: bool = field(default=False, init=False)
    _drained: bool = field(default=False, init=False)

    @property
    def sio(self) -> Server:
        return self.realtime.sio

    @property
    def broker_ready(self) -> asyncio.Event:
        """Set while the node hears the other nodes (always, in embedded mode)."""
        return self.broker.up

    @property
    def broker_down(self) -> asyncio.Event:
        return self.broker.down

    async def drain(
        self, grace: float, *, before_goodbye: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """First half of a graceful stop, while the listener still answers.

        ``/readyz`` turns 503 and new connections and fetches are refused
        (``unavailable``); fetches waiting for an acknowledgement get up to
        ``grace`` seconds to finish (what is acknowledged is marked seen);
        then ``before_goodbye`` runs (``pns serve`` closes its listener there,
        so clients told to go do not come straight back to a node that
        refuses them) and every client is told to reconnect elsewhere
        (``pns:disconnect``, ``shutdown``) and disconnected. Idempotent.
        """
        if self._drained:
            return
        self._drained = True
        self.stopping = True
        logger.info("stopping: draining %d connections", len(self.realtime.connections))
        await self.realtime.drain(grace)
        await self.realtime.close_all()
        if before_goodbye is not None:
            await before_goodbye()
        await self._disconnect_clients()

    async def close_connections(self) -> None:
        """Drain (without grace, if not drained yet), then close every Engine.IO
        connection, so the web server has no handler left to wait for (a Socket.IO
        disconnect leaves the WebSocket itself to the client)."""
        await self.drain(0)
        try:
            # python-engineio's disconnect() fails on an empty socket table.
            if self.sio.eio.sockets:
                async with asyncio.timeout(STOP_GRACE_SECONDS / 2):
                    await self.sio.eio.disconnect()
        except TimeoutError:
            logger.warning("stopping: some connections did not close in time; aborting them")
        for wrapper in list(PNSWebSocket.live.values()):
            if wrapper.server is self.sio.eio:
                wrapper.abort()

    async def _disconnect_clients(self) -> None:
        sids = list(self.realtime.connections)
        if not sids:
            return
        bye = self.realtime.close_connection
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await asyncio.gather(
                    *(bye(sid, SHUTDOWN, reconnect=True) for sid in sids), return_exceptions=True
                )
        except TimeoutError:
            logger.warning("stopping: some clients did not take their disconnect in time")

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        store = "up"
        try:
            await self.store.ping()
        except StoreUnavailable:
            store = "down"
        ready = store == "up" and not self.stopping
        return ready, {
            "status": "ready" if ready else "unavailable",
            "store": store,
            "broker": self.broker.broker_status(),
            "stopping": self.stopping,
            "connections": len(self.realtime.connections),
        }
