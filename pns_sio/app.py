"""The composition root: every part of a node is built here, and nowhere else.

``assemble`` builds the parts in dependency order, each given what it uses through
its constructor; ``create_app`` puts them behind one aiohttp application (Socket.IO,
the HTTP API, operations, static files) with one cleanup context per resource,
torn down in reverse. Nothing below this module imports it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from . import jsoncodec
from .auth import build_authenticator
from .counts import CountService
from .delivery import Delivery
from .demo import add_demo_routes
from .http_api import NotificationsAPI, add_api_routes
from .metrics import Metrics
from .node import Node
from .notifier import Notifier
from .ops import add_ops_routes
from .origins import origin_policy
from .realtime import Realtime
from .retention import Retention
from .settings import Settings
from .signals import Signals
from .sio.cluster import ClusterRoutedBroker
from .sio.managers import LocalBroker, RedisBroker
from .sio.routed import RoutedRedisBroker
from .sio.websocket import SlowClientWatchdog
from .static_files import add_static_routes
from .store import NotificationStore, open_store
from .store.guarded import GUARD_MARGIN_SECONDS, GuardedStore
from .tasks import TaskOwner

logger = logging.getLogger(__name__)

NODE = web.AppKey("node", Node)


def assemble(settings: Settings) -> Node:
    """Build every part of a node; nothing is opened or started yet."""
    metrics = Metrics()
    tasks = TaskOwner()
    broker: LocalBroker | RedisBroker
    if not settings.redis_url:
        broker = LocalBroker(on_state=metrics.broker_up.set)
    else:
        redis_options: dict[str, Any] = {
            "channel": settings.redis_channel,
            "on_dropped": metrics.broker_dropped.inc,
            "on_state": metrics.broker_up.set,
            "on_received": metrics.broker_received.inc,
        }
        if settings.routing == "routed":
            routed_class = (
                ClusterRoutedBroker
                if settings.redis_url.startswith("redis+cluster://")
                else RoutedRedisBroker
            )
            routed = routed_class(settings.redis_url, linger=settings.route_linger, **redis_options)
            metrics.user_channels.set_function(lambda: routed.channels)
            broker = routed
        else:
            broker = RedisBroker(settings.redis_url, **redis_options)
    retention_period = timedelta(days=settings.retention_days)

    async def open_configured_store() -> NotificationStore:
        return await open_store(
            settings.store_url, timeout=settings.store_timeout, retention=retention_period
        )

    store = GuardedStore(
        timeout=settings.store_timeout + GUARD_MARGIN_SECONDS,
        report=_store_call_reporter(metrics),
        opener=open_configured_store,
    )
    retention = Retention(store, period=retention_period)
    counts = CountService(
        store,
        emit=broker.emit,
        has_user=broker.has_user,
        tasks=tasks,
        on_sent=metrics.counts_sent.inc,
    )
    delivery = Delivery(
        store, counts, on_seen=metrics.delivered.inc, on_undeliverable=metrics.undeliverable.inc
    )
    signals = Signals(
        counts,
        has_user=broker.has_user,
        users_here=broker.users_here,
        emit=broker.emit,
        tasks=tasks,
        metrics=metrics,
    )
    authenticator = build_authenticator(settings)
    realtime = Realtime(
        authenticator=authenticator,
        delivery=delivery,
        counts=counts,
        signals=signals,
        metrics=metrics,
        settings=settings,
        tasks=tasks,
        server_options={
            "async_mode": "aiohttp",
            "client_manager": broker,
            "cors_allowed_origins": origin_policy(
                settings, on_refused=metrics.connects.labels("origin_refused").inc
            ),
            "cors_credentials": True,
            "ping_interval": settings.ping_interval,
            "ping_timeout": settings.ping_timeout,
            "max_http_buffer_size": settings.max_message_bytes,
            "logger": False,
            "engineio_logger": False,
            # python-socketio sets this on the server's packet class.
            "json": jsoncodec,
        },
    )
    # The HTTP API's way in: the node's own manager serves its devices first.
    notifier = Notifier(store, broker.emit, on_created=metrics.created.inc)
    watchdog = SlowClientWatchdog(
        realtime.sio,
        settings.max_queued_frames,
        on_drop=metrics.closed.labels("slow_reader").inc,
    )
    return Node(
        settings=settings,
        metrics=metrics,
        tasks=tasks,
        store=store,
        broker=broker,
        counts=counts,
        delivery=delivery,
        signals=signals,
        retention=retention,
        authenticator=authenticator,
        realtime=realtime,
        notifier=notifier,
        watchdog=watchdog,
    )


def _store_call_reporter(metrics: Metrics) -> Callable[[str, bool, float], None]:
    def report(op: str, ok: bool, seconds: float) -> None:
        metrics.store_queries.labels(op).inc()
        metrics.store_seconds.labels(op).observe(seconds)
        if not ok:
            metrics.store_errors.labels(op).inc()

    return report


def create_app(settings: Settings | None = None) -> web.Application:
    """Build a node's application; the node starts with the app and stops with it.

    Raises ``SettingsError`` when settings come from the environment and are wrong.
    """
    settings = settings or Settings.from_env()
    node = assemble(settings)
    # The body bound is the HTTP API's; Socket.IO polling bodies are far smaller.
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[NODE] = node
    node.sio.attach(app)
    add_api_routes(
        app,
        NotificationsAPI(node.notifier, node.store, settings),
        lambda status: node.metrics.http_requests.labels(str(status)).inc(),
    )
    add_ops_routes(app, node.readiness, node.metrics)
    add_static_routes(app)
    if settings.demo:
        add_demo_routes(app)
    # Opened in this order, closed in the reverse one.
    app.cleanup_ctx.extend([_store, _authenticator, _broker, _background])
    # Connections close on shutdown, not at cleanup: aiohttp waits for every open
    # handler (each WebSocket is one) between the two. Clients hear pns:disconnect.
    app.on_shutdown.append(_close_connections)
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    store = app[NODE].store
    await store.open()
    yield
    await store.close()


async def _authenticator(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[NODE].authenticator.close()


async def _broker(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    # Subscribed now, not at the first client: signals and readiness need it.
    node.sio.start_manager()
    yield
    await node.broker.close()
    await node.sio.shutdown()


async def _background(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    if not node.store.expires_itself:
        node.tasks.spawn(node.retention.run(), name="retention")
    node.tasks.spawn(node.watchdog.run(), name="slow-client-watchdog")
    yield
    await node.tasks.close()


async def _close_connections(app: web.Application) -> None:
    await app[NODE].close_connections()
