"""Socket.IO handlers: connect, disconnect, get-new-notifications, and everything else.

Knows Socket.IO; knows nothing of the database (it talks to ``Delivery`` and
``CountService``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError as RefuseConnection

from . import schemas
from .auth import Authenticator, Handshake, Identity
from .broker import LocalBroker, RedisBroker
from .counts import CountService
from .delivery import ClientGone, Delivery
from .errors import (
    AckTimeout,
    AuthUnavailable,
    InvalidRequest,
    PNSError,
    RateLimited,
    Unauthorized,
    error_payload,
)
from .metrics import Metrics
from .wire import EV_BATCH, EV_COUNT, EV_FETCH, NAMESPACE, user_room

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Connection:
    """One Socket.IO connection of a device, on this node."""

    sid: str
    identity: Identity
    fetching: bool = False
    pending_ack: asyncio.Future[tuple[Any, ...]] | None = None

    @property
    def user_id(self) -> str:
        return self.identity.user_id


def handshake_from_environ(environ: dict[str, Any], auth: Any) -> Handshake:
    headers = {
        key[5:].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return Handshake(headers=headers, auth=auth, remote=remote)


class Realtime:
    """The node's Socket.IO side: who is connected, and what their events do."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        *,
        authenticator: Authenticator,
        delivery: Delivery,
        counts: CountService,
        metrics: Metrics,
        ack_timeout: float,
    ) -> None:
        self.sio = sio
        self.authenticator = authenticator
        self.delivery = delivery
        self.counts = counts
        self.metrics = metrics
        self.ack_timeout = ack_timeout
        self.connections: dict[str, Connection] = {}
        self.accepting = True
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on(EV_FETCH, self.on_fetch)
        sio.on("*", self.on_unknown_event)
        manager = sio.manager
        if isinstance(manager, LocalBroker | RedisBroker):
            manager.on_connected = self.on_connected

    # -- connection lifecycle ------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not self.accepting:
            self.metrics.connects.labels("stopping").inc()
            raise RefuseConnection("unavailable", {"code": "unavailable"})
        try:
            identity = await self.authenticator.authenticate(handshake_from_environ(environ, auth))
        except Unauthorized:
            self.metrics.connects.labels("unauthorized").inc()
            # PROTOCOL: the same answer for every failure; nothing leaks.
            raise RefuseConnection("unauthorized", {"code": "unauthorized"}) from None
        except AuthUnavailable:
            self.metrics.connects.labels("auth_unavailable").inc()
            raise RefuseConnection("unavailable", {"code": "unavailable"}) from None
        self.connections[sid] = Connection(sid=sid, identity=identity)
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
        # PROTOCOL: new-notifications-count is the first event of a connection.
        self.counts.refresh(conn.user_id)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.metrics.connections.dec()
        if conn.pending_ack is not None and not conn.pending_ack.done():
            conn.pending_ack.set_exception(ClientGone())

    # -- events ----------------------------------------------------------------

    async def on_fetch(self, sid: str, *args: Any) -> dict[str, Any] | None:
        conn = self.connections.get(sid)
        if conn is None:
            return None
        try:
            if len(args) > 1:
                raise InvalidRequest("invalid payload: expected at most one argument")
            request = schemas.load(schemas.FETCH_REQUEST, args[0] if args else None)
            if conn.fetching:
                raise RateLimited("a fetch is already in progress on this connection")
            conn.fetching = True
            try:
                result = await self.delivery.fetch(
                    conn.user_id, request["limit"], lambda batch: self._send_batch(conn, batch)
                )
            finally:
                conn.fetching = False
        except ClientGone:
            self.metrics.fetches.labels("client_gone").inc()
            return None
        except Exception as exc:
            outcome = exc.code if isinstance(exc, PNSError) else "internal"
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
            self._forget_callback(conn.sid, on_ack)

    def _forget_callback(self, sid: str, callback: Any) -> None:
        # python-socketio keeps an unanswered callback until the client
        # disconnects; drop ours so a client that never acks leaks nothing,
        # and a late ack finds nothing to call (it marks nothing).
        pending = self.sio.manager.callbacks.get(sid)
        if not pending:
            return
        for key, value in list(pending.items()):
            if value is callback:
                del pending[key]

    async def on_unknown_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        logger.info("unknown event from %s", sid)
        return error_payload(InvalidRequest(f"unknown event {event[:64]!r}"))

    # -- counts ------------------------------------------------------------------

    async def emit_count(self, user_id: str, payload: dict[str, Any], everywhere: bool) -> None:
        """Emit a count to the user's room: this node's connections, or every node's."""
        await self.sio.emit(EV_COUNT, payload, room=user_room(user_id), ignore_queue=not everywhere)

    async def close_all(self) -> None:
        """Fail pending acks so their handlers end (nothing is marked)."""
        self.accepting = False
        for conn in list(self.connections.values()):
            if conn.pending_ack is not None and not conn.pending_ack.done():
                conn.pending_ack.set_exception(ClientGone())
