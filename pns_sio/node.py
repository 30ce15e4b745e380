"""A PNS node: the Socket.IO server, its manager, the store and the services between them.

``Node`` is built from ``Settings`` in one place, started once and stopped
once (``stop`` is idempotent and bounded). Transport (``realtime``,
``http_api``) calls services (``counts``, ``delivery``), which call the store.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from . import jsoncodec
from .auth import build_authenticator
from .broker import LocalBroker, RedisBroker
from .counts import CountService
from .delivery import Delivery
from .errors import StoreUnavailable
from .metrics import Metrics
from .notifier import Notifier
from .realtime import Realtime
from .settings import Settings, normalize_origin
from .store import UnseenCount, open_store
from .store.guarded import GuardedStore
from .store.unopened import UnopenedStore
from .tasks import TaskOwner
from .transport import PNSWebSocket, SlowClientWatchdog
from .transport import install as install_websocket
from .wire import EV_RESYNC, NAMESPACE

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
GUARD_MARGIN_SECONDS = 1.0
PURGE_INTERVAL_SECONDS = 3600.0


def origin_policy(settings: Settings) -> Any:
    """What python-engineio's ``cors_allowed_origins`` gets.

    Never ``[]`` (python-engineio reads it as "check nothing"). A callable,
    so origins compare case-insensitively and without a trailing slash.
    """
    if settings.demo:
        return "*"
    allowed = settings.allowed_origins

    def is_allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return True  # not a browser: judged by its credentials alone
        origin = normalize_origin(origin)
        if allowed is not None:
            return origin in allowed
        # Same origin only: the origin this request was addressed to.
        host = environ.get("HTTP_HOST", "")
        scheme = environ.get("wsgi.url_scheme", "http")
        candidates = {normalize_origin(f"{scheme}://{host}")}
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST")
        forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO")
        if forwarded_host or forwarded_proto:
            f_scheme = (forwarded_proto or scheme).split(",")[0].strip()
            f_host = (forwarded_host or host).split(",")[0].strip()
            candidates.add(normalize_origin(f"{f_scheme}://{f_host}"))
        return origin in candidates

    return is_allowed


class Node:
    """Everything one PNS process runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.tasks = TaskOwner()
        self.stopping = False
        self._drained = False
        self._stopped = False
        self.broker: LocalBroker | RedisBroker = (
            RedisBroker(
                settings.redis_url,
                channel=settings.redis_channel,
                on_publish_lost=self._republish,
                on_dropped=self.metrics.broker_dropped.inc,
            )
            if settings.redis_url
            else LocalBroker()
        )
        # The backends give up after store_timeout themselves (cleanly, nothing
        # written); the guard is the backstop for a driver that hangs anyway.
        self.store = GuardedStore(
            UnopenedStore(),
            timeout=settings.store_timeout + GUARD_MARGIN_SECONDS,
            report=self._report_store_call,
        )
        self.counts = CountService(
            self.store,
            emit=self._emit_count,
            has_user=self.broker.has_user,
            tasks=self.tasks,
            on_sent=self.metrics.counts_sent.inc,
        )
        self.delivery = Delivery(
            self.store,
            self.counts,
            on_seen=self.metrics.delivered.inc,
            on_undeliverable=self.metrics.undeliverable.inc,
        )
        self.authenticator = build_authenticator(settings)
        self.realtime = Realtime(
            authenticator=self.authenticator,
            delivery=self.delivery,
            counts=self.counts,
            metrics=self.metrics,
            settings=settings,
            tasks=self.tasks,
            server_options={
                "async_mode": "aiohttp",
                "client_manager": self.broker,
                "cors_allowed_origins": origin_policy(settings),
                "cors_credentials": True,
                "ping_interval": settings.ping_interval,
                "ping_timeout": settings.ping_timeout,
                "max_http_buffer_size": settings.max_message_bytes,
                "logger": False,
                "engineio_logger": False,
                # Note: python-socketio sets this on the server's packet class.
                "json": jsoncodec,
            },
        )
        self.sio = self.realtime.sio
        # The HTTP API's way in: the node's own manager serves its devices first.
        self.notifier = Notifier(self.store, self.sio.emit, on_created=self.metrics.created.inc)
        install_websocket(self.sio)
        self.watchdog = SlowClientWatchdog(
            self.sio,
            settings.max_queued_frames,
            on_drop=self.metrics.closed.labels("slow_reader").inc,
        )
        self.broker.on_signal = self._on_signal
        self.broker.on_resubscribed = self.resync

    @property
    def broker_ready(self) -> asyncio.Event:
        """Set while the node hears the other nodes (always, in embedded mode)."""
        return self.broker.up

    @property
    def broker_down(self) -> asyncio.Event:
        return self.broker.down

    def _report_store_call(self, op: str, ok: bool, seconds: float) -> None:
        self.metrics.store_queries.labels(op).inc()
        self.metrics.store_seconds.labels(op).observe(seconds)
        if not ok:
            self.metrics.store_errors.labels(op).inc()

    async def _emit_count(self, user_id: str, payload: dict[str, Any], everywhere: bool) -> None:
        await self.realtime.emit_count(user_id, payload, everywhere)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and start listening to the broker."""
        self.store.inner = await open_store(
            self.settings.store_url, timeout=self.settings.store_timeout, retention=self.retention
        )
        if not getattr(self.store.inner, "EXPIRES_ITSELF", False):
            self.tasks.spawn(self._purge_periodically(), name="retention")
        self.tasks.spawn(self.watchdog.run(), name="slow-client-watchdog")
        # Subscribe now, not at the first client: signals and readiness need it.
        if not self.sio.manager_initialized:
            self.sio.manager_initialized = True
            self.broker.initialize()
        logger.info(
            "node ready: store=%s broker=%s",
            self.settings.store_url.split("://")[0],
            "redis" if self.settings.redis_url else "embedded",
        )

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.settings.retention_days)

    async def purge_expired(self) -> int:
        """Delete seen notifications older than the retention; return how many."""
        purged = await self.store.purge_seen(datetime.now(UTC) - self.retention)
        if purged:
            logger.info("retention: deleted %d seen notifications", purged)
        return purged

    async def _purge_periodically(self) -> None:
        # The first pass waits a while (with jitter): a retention of days loses
        # nothing by it, and nodes started together do not all write at once.
        await asyncio.sleep(PURGE_INTERVAL_SECONDS * (0.5 + random.random() / 2))
        while True:
            try:
                await self.purge_expired()
            except StoreUnavailable:
                logger.warning("retention: the store is unavailable; next try in an hour")
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

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

    async def stop(self) -> None:
        """Drain (without grace, if not drained yet), end background work, close broker
        and store. Idempotent; bounded by ``STOP_GRACE_SECONDS`` per phase."""
        if self._stopped:
            return
        self._stopped = True
        await self.drain(0)
        await self._close_transports()
        await self.tasks.close(STOP_GRACE_SECONDS)
        await self.broker.close()
        await self.sio.shutdown()
        await self.authenticator.close()
        await self.store.close()

    async def _close_transports(self) -> None:
        """Close every Engine.IO connection, so the web server has no handler left to wait
        for (a Socket.IO disconnect leaves the WebSocket itself to the client)."""
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
                    *(bye(sid, "shutdown", reconnect=True) for sid in sids), return_exceptions=True
                )
        except TimeoutError:
            logger.warning("stopping: some clients did not take their disconnect in time")

    # -- notifications -------------------------------------------------------------

    def _on_signal(
        self, user_id: str, notification_id: str | None, unseen: UnseenCount | None
    ) -> None:
        # Runs inside the broker's listener: schedule, never await store work here.
        here = self.broker.has_user(user_id)
        self.metrics.signals.labels("yes" if here else "no").inc()
        if not here:
            return
        if unseen is not None:
            self.counts.forward(user_id, unseen)
        else:
            self.counts.refresh(user_id)

    def _republish(self, users: set[str] | None) -> None:
        """Messages this node could not publish are lost for the other nodes: once Redis
        takes messages again, publish those users' true counts everywhere (None: have
        every node resync all its users)."""
        self.metrics.republished.inc()
        if users is None:
            self.resync()
            self.tasks.spawn(self.sio.emit(EV_RESYNC, {}, namespace=NAMESPACE), name="resync")
            return
        for user_id in users:
            self.counts.refresh(user_id, everywhere=True)

    def resync(self) -> None:
        """Re-send the true count to every user connected here (after a broker outage)."""
        users = self.broker.users_here()
        self.metrics.resyncs.inc()
        logger.info("resyncing counts of %d users", len(users))
        self.counts.refresh_many(users)

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
