"""Socket.IO handlers: connect, disconnect, get-new-notifications, and everything else.

Knows Socket.IO; knows nothing of the database (it talks to ``Delivery`` and
``CountService``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from socketio.exceptions import ConnectionRefusedError as RefuseConnection

from . import schemas
from .auth import Authenticator, Handshake, Identity
from .counts import CountService
from .deadlines import Deadlines
from .delivery import ClientGone, Delivery
from .errors import (
    INTERNAL,
    RATE_LIMITED,
    TOKEN_EXPIRED,
    UNAUTHORIZED,
    UNAVAILABLE,
    AckTimeout,
    AuthUnavailable,
    InvalidRequest,
    NodeStopping,
    PNSError,
    RateLimited,
    Unauthorized,
    error_payload,
)
from .limits import KeyedBuckets, TokenBucket, client_address, parse_networks
from .metrics import Metrics
from .quiet_log import QuietLog
from .settings import Settings
from .signals import Signals
from .sio.packets import ClientEventName
from .sio.server import NodeHooks, Server
from .tasks import TaskOwner
from .wire import EV_BATCH, EV_DISCONNECT, EV_FETCH, NAMESPACE, user_room

logger = logging.getLogger(__name__)


FLOOD_DISCONNECT = 100  # refusals in a row before a flooding connection is closed
# Kept in a session's environ from its Engine.IO open to its Socket.IO connect.
HANDSHAKE_VERDICT = "pns.handshake_allowed"
JOIN_TIMER = "pns.join_timer"
HEARD_TIMEOUT = 2.0  # seconds a connect waits for Redis to confirm a subscription
REMOTE = "pns.remote"  # the peer's address, kept once the request is let go
# What a session's environ keeps once it has joined: what a later CONNECT on the same
# Engine.IO session authenticates with. python-socketio keeps the environ for the
# connection's life; every other header (user agent, languages, the WebSocket
# handshake's own) would stay with it, a few KiB per connection.
KEPT_AFTER_JOIN = (
    HANDSHAKE_VERDICT,
    "HTTP_COOKIE",
    "HTTP_AUTHORIZATION",
    "HTTP_X_FORWARDED_FOR",
)


@dataclass(slots=True)
class Connection:
    """One Socket.IO connection of a device, on this node."""

    sid: str
    identity: Identity
    bucket: TokenBucket
    fetching: bool = False
    # A count went to this connection: a batch may follow (PROTOCOL: the count first).
    counted: bool = False
    pending_ack: asyncio.Future[tuple[Any, ...]] | None = None
    refused_in_a_row: int = 0

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def mark_counted(self) -> None:
        self.counted = True


def handshake_from_environ(environ: dict[str, Any], auth: Any) -> Handshake:
    headers = {
        key[5:].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }
    if REMOTE in environ:
        remote = environ[REMOTE]
    else:
        remote = getattr(environ.get("aiohttp.request"), "remote", None)
    return Handshake(headers=headers, auth=auth, remote=remote)


def trim_environ(environ: dict[str, Any]) -> None:
    """Keep only ``KEPT_AFTER_JOIN`` (and the peer's address) in a joined session's
    environ. The dict itself stays (python-engineio's frames hold it), emptied in place."""
    kept = {key: environ[key] for key in KEPT_AFTER_JOIN if key in environ}
    kept[REMOTE] = environ.get(REMOTE) or getattr(environ.get("aiohttp.request"), "remote", None)
    environ.clear()
    environ.update(kept)


class Realtime:
    """The node's Socket.IO side: who is connected, and what their events do."""

    def __init__(
        self,
        *,
        server_options: dict[str, Any],
        authenticator: Authenticator,
        delivery: Delivery,
        counts: CountService,
        metrics: Metrics,
        settings: Settings,
        tasks: TaskOwner,
        signals: Signals,
    ) -> None:
        hooks = NodeHooks(
            on_connected=self.on_connected,
            on_signal=signals.on_signal,
            on_resync=signals.resync,
            on_publish_lost=signals.on_publish_lost,
            on_malformed=self._malformed,
            on_session=self.on_session,
        )
        self.sio = Server(hooks=hooks, **server_options)
        sio = self.sio
        self.authenticator = authenticator
        self.delivery = delivery
        self.counts = counts
        self.metrics = metrics
        self.ack_timeout = settings.ack_timeout
        self.settings = settings
        self.tasks = tasks
        self.connections: dict[str, Connection] = {}
        self.per_user: Counter[str] = Counter()
        self.handshakes = KeyedBuckets(settings.handshake_rate, settings.handshake_burst)
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.accepting = True
        self.quiet = QuietLog(logger)
        # Set whenever no fetch is waiting for its acknowledgement (drain waits on it).
        self._no_fetch_in_flight = asyncio.Event()
        self._no_fetch_in_flight.set()
        self._fetches_in_flight = 0
        # Tokens' expiries: one timer for every connection's (deadlines.py).
        self._expiries: Deadlines[str] = Deadlines(self._expire)
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on(EV_FETCH, self.on_fetch)
        sio.on("*", self.on_unknown_event)

    # -- connection lifecycle ------------------------------------------------

    def on_session(self, eio_sid: str, environ: dict[str, Any]) -> None:
        """An Engine.IO session opened: it spends a handshake of its address now, and
        is closed if it has not joined the namespace within the connect timeout."""
        handshake = handshake_from_environ(environ, None)
        address = client_address(
            handshake.remote, handshake.headers.get("x-forwarded-for"), self.trusted_proxies
        )
        environ[HANDSHAKE_VERDICT] = self.handshakes.take(address)
        loop = asyncio.get_running_loop()
        environ[JOIN_TIMER] = loop.call_later(
            self.settings.connect_timeout, self._join_timeout, eio_sid, environ
        )

    def _join_timeout(self, eio_sid: str, environ: dict[str, Any]) -> None:
        # PROTOCOL: a session that does not join within the connect timeout is closed.
        if environ.pop(JOIN_TIMER, None) is None:
            return  # joined meanwhile
        if eio_sid in self.sio.eio.sockets:
            self.metrics.closed.labels("connect_timeout").inc()
            self.tasks.spawn(self.sio.eio.disconnect(eio_sid), name="join-timeout")

    def _malformed(self, problem: str, closing: bool) -> None:
        self.metrics.malformed.inc()
        if closing:
            self.metrics.closed.labels("malformed").inc()
        self.quiet.info(
            "malformed packet%s: %s", " (connection closed)" if closing else "", problem
        )

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not self.accepting:
            self.metrics.connects.labels("stopping").inc()
            raise RefuseConnection(UNAVAILABLE, {"code": UNAVAILABLE})
        # Before authenticating: a storm of bad handshakes costs no auth work. The
        # Engine.IO session took its address's token when it opened (on_session).
        if not environ.get(HANDSHAKE_VERDICT):
            self.metrics.connects.labels("rate_limited").inc()
            raise RefuseConnection(RATE_LIMITED, {"code": RATE_LIMITED})
        handshake = handshake_from_environ(environ, auth)
        try:
            identity = await self.authenticator.authenticate(handshake)
        except Unauthorized:
            self.metrics.connects.labels("unauthorized").inc()
            # PROTOCOL: the same answer for every failure; nothing leaks.
            raise RefuseConnection(UNAUTHORIZED, {"code": UNAUTHORIZED}) from None
        except AuthUnavailable:
            self.metrics.connects.labels("auth_unavailable").inc()
            raise RefuseConnection(UNAVAILABLE, {"code": UNAVAILABLE}) from None
        limit = self.settings.max_connections_per_user
        if limit and self.per_user[identity.user_id] >= limit:
            self.metrics.connects.labels("rate_limited").inc()
            raise RefuseConnection(RATE_LIMITED, {"code": RATE_LIMITED})
        heard = self.sio.manager.expect_user(identity.user_id)
        if heard is not None:
            # Routed mode, the user's first device here: accepted once Redis confirmed
            # the node hears the user's channel, so no change slips between the first
            # count and the subscription. Bounded: past it (a stalled Redis) the lost
            # subscription's resync brings the counts again.
            await asyncio.wait((heard,), timeout=HEARD_TIMEOUT)
        self.per_user[identity.user_id] += 1
        timer = environ.pop(JOIN_TIMER, None)
        if timer is not None:
            timer.cancel()
        bucket = TokenBucket(self.settings.event_rate, self.settings.event_burst)
        self.connections[sid] = Connection(sid=sid, identity=identity, bucket=bucket)
        self.metrics.connects.labels("accepted").inc()
        self.metrics.connections.inc()
        logger.debug("connect %s user=%s device=%s", sid, identity.user_id, identity.device_id)

    def on_connected(self, sid: str) -> None:
        """Called by the manager once the CONNECT packet is out.

        Joining the user's room only now means no count can reach the client
        before its connection is acknowledged; counting only after joining
        means no signal can slip between the count and the join.
        """
        conn = self.connections.get(sid)
        if conn is None:
            return
        self.sio.manager.basic_enter_room(sid, NAMESPACE, user_room(conn.user_id))
        trim_environ(self.sio.get_environ(sid, NAMESPACE) or {})
        # PROTOCOL: new-notifications-count is the first event of a connection.
        self.counts.refresh(conn.user_id, then=conn.mark_counted)
        if conn.identity.expires_at is not None:
            delay = max(0.0, conn.identity.expires_at - time.time())
            self._expiries.set(sid, asyncio.get_running_loop().time() + delay)

    def _expire(self, sid: str) -> None:
        if sid in self.connections:
            self.metrics.closed.labels("token_expired").inc()
            self.tasks.spawn(self.close_connection(sid, TOKEN_EXPIRED, reconnect=True))

    async def close_connection(self, sid: str, code: str, *, reconnect: bool) -> None:
        """PROTOCOL: tell the client why (pns:disconnect), then close its connection."""
        payload = {"code": code, "reconnect": reconnect}
        await self.sio.emit(EV_DISCONNECT, payload, to=sid, ignore_queue=True)
        await self.sio.disconnect(sid, ignore_queue=True)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.metrics.connections.dec()
        self.per_user[conn.user_id] -= 1
        if self.per_user[conn.user_id] <= 0:
            del self.per_user[conn.user_id]
        self._expiries.cancel(sid)
        if conn.pending_ack is not None and not conn.pending_ack.done():
            conn.pending_ack.set_exception(ClientGone())

    # -- events ----------------------------------------------------------------

    async def on_fetch(self, sid: str, *args: Any) -> dict[str, Any] | None:
        conn = self.connections.get(sid)
        if conn is None:
            return None
        try:
            self._check_rate(conn)
            if len(args) > 1:
                raise InvalidRequest("invalid payload: expected at most one argument")
            request = schemas.load(schemas.FETCH_REQUEST, args[0] if args else None)
            if conn.fetching:
                raise RateLimited("a fetch is already in progress on this connection")
            if not self.accepting:
                raise NodeStopping()
            conn.fetching = True
            self._fetches_in_flight += 1
            self._no_fetch_in_flight.clear()
            try:
                result = await self.delivery.fetch(
                    conn.user_id, request["limit"], lambda batch: self._send_batch(conn, batch)
                )
            finally:
                conn.fetching = False
                self._fetches_in_flight -= 1
                if not self._fetches_in_flight:
                    self._no_fetch_in_flight.set()
        except ClientGone:
            self.metrics.fetches.labels("client_gone").inc()
            return None
        except Exception as exc:
            outcome = exc.code if isinstance(exc, PNSError) else INTERNAL
            self.metrics.fetches.labels(outcome).inc()
            return error_payload(exc)
        self.metrics.fetches.labels("ok").inc()
        return result

    async def _send_batch(self, conn: Connection, batch: dict[str, Any]) -> tuple[Any, ...]:
        """Emit a batch with an ack callback and wait for the ack, the timeout or a disconnect."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, ...]] = loop.create_future()

        def on_ack(*args: Any) -> None:
            if not future.done():
                future.set_result(args)

        conn.pending_ack = future
        try:
            if self.connections.get(conn.sid) is not conn:
                # Closed while its batch was read (flooding, expiry, a stop): nobody is
                # left to acknowledge, so the fetch ends now instead of at the timeout.
                raise ClientGone()
            if not conn.counted:
                # The first count is still on its way (its read met a busy store, or
                # went through Redis): this connection gets one of its own first.
                await self.counts.send_to(conn.user_id, conn.sid)
                conn.counted = True
            # ignore_queue: the ack must come back to this node, not through Redis.
            await self.sio.emit(EV_BATCH, batch, to=conn.sid, callback=on_ack, ignore_queue=True)
            async with asyncio.timeout(self.ack_timeout):
                return await future
        except TimeoutError:
            raise AckTimeout() from None
        finally:
            conn.pending_ack = None
            if not future.done():
                future.cancel()
            # A late ack finds nothing to call: it marks nothing.
            self.sio.forget_callback(conn.sid, on_ack)

    async def on_unknown_event(self, event: Any, sid: str, *args: Any) -> dict[str, Any] | None:
        conn = self.connections.get(sid)
        if conn is None:
            return None
        try:
            self._check_rate(conn)
        except RateLimited as exc:
            return error_payload(exc)
        if isinstance(event, ClientEventName) and event.problem is not None:
            self.quiet.info("malformed event from %s: %s", sid, event.problem)
            return error_payload(InvalidRequest(event.problem[:200]))
        name = event.name if isinstance(event, ClientEventName) else event
        self.quiet.info("unknown event from %s", sid)
        return error_payload(InvalidRequest(f"unknown event {str(name)[:64]!r}"))

    def _check_rate(self, conn: Connection) -> None:
        if conn.bucket.take():
            conn.refused_in_a_row = 0
            return
        conn.refused_in_a_row += 1
        if conn.refused_in_a_row == FLOOD_DISCONNECT:
            logger.info("closing a connection that keeps flooding: %s", conn.sid)
            self.metrics.closed.labels("rate_limited").inc()
            self.tasks.spawn(self.close_connection(conn.sid, RATE_LIMITED, reconnect=False))
        raise RateLimited("too many events: slow down")

    async def drain(self, grace: float) -> None:
        """Refuse new connections and fetches; let fetches in flight finish (bounded by
        ``grace`` seconds), so batches acknowledged now are still marked seen."""
        self.accepting = False
        if grace > 0:
            try:
                async with asyncio.timeout(grace):
                    await self._no_fetch_in_flight.wait()
            except TimeoutError:
                logger.warning("stopping: %gs grace over with fetches still in flight", grace)

    async def close_all(self) -> None:
        """Fail pending acks so their handlers end (nothing is marked)."""
        self.accepting = False
        for conn in list(self.connections.values()):
            if conn.pending_ack is not None and not conn.pending_ack.done():
                conn.pending_ack.set_exception(ClientGone())
