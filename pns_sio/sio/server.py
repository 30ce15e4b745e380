"""python-socketio's ``AsyncServer`` as PNS runs it, and the hooks it reports through.

The server decodes client packets with ``ClientPacket`` (reserved names, shapes,
depth and attachments; see ``packets.py``), serves WebSockets with PNS's own loop
(``websocket.py``), and hands what it and its manager hear to ``NodeHooks``, given
to its constructor. A manager reaches the hooks through its server: python-socketio
gives every manager its server (``set_server``) when the server is built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import socketio

from ..store import UnseenCount
from .packets import ClientPacket, PacketRefused
from .websocket import install


@dataclass(frozen=True, slots=True)
class NodeHooks:
    """What the server and its manager report to the rest of the node.

    Each runs inside python-socketio's own code (a packet's dispatch, the Redis
    listener): it must only schedule work, never await it.
    """

    # A Socket.IO connection is acknowledged (its CONNECT packet is out).
    on_connected: Callable[[str], None]
    # Some process signalled a change of a user's notifications: (user, record, count).
    on_signal: Callable[[str, str | None, UnseenCount | None], None]
    # Messages from other nodes may have been missed: resync every count held here.
    on_resync: Callable[[], None]
    # Messages this node published were lost: the users they were for (None: anyone).
    on_publish_lost: Callable[[set[str] | None], None]
    # A client packet could not be read: (what was wrong, whether the connection closes).
    on_malformed: Callable[[str, bool], None]
    # An Engine.IO session opened, before it joins the namespace: (eio sid, environ).
    on_session: Callable[[str, dict[str, Any]], None]


class Server(socketio.AsyncServer):
    """python-socketio's server, hardened where a client's packets reach it.

    What still fails to decode or dispatch (garbage that is no Socket.IO packet at
    all) is dropped and reported to ``on_malformed``; a ``PacketRefused`` closes the
    connection.
    """

    manager_initialized: bool  # AsyncServer's: set once the manager was started

    def __init__(self, *, hooks: NodeHooks, **options: Any) -> None:
        super().__init__(serializer=ClientPacket, **options)
        self.hooks = hooks
        install(self)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        self.hooks.on_session(eio_sid, environ)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and _transport(environ) == "websocket":
            # python-engineio starts a task per session that sleeps out the first ping
            # interval (a task, its frame and a timer: about a KiB per connection for
            # its first 25 s). A WebSocket session's pings are EngineIOLoop's, the
            # first one too: the library's call right after this one does nothing.
            socket.schedule_ping = _no_ping
            socket.pns_first_ping = True
        return result

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except PacketRefused as exc:
            self._binary_packet.pop(eio_sid, None)
            self.hooks.on_malformed(str(exc), True)
            await self.eio.disconnect(eio_sid)
        except Exception as exc:  # a packet python-socketio cannot read: drop it
            self._binary_packet.pop(eio_sid, None)
            self.hooks.on_malformed(f"{type(exc).__name__}: {str(exc)[:100]}", False)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)
        # A long-poll the session's client left waiting would otherwise hold its handler
        # (and a stopping node's web server) until the poll times out: end it now, as
        # python-engineio ends a poll itself (a None in the socket's packet queue).
        queue = getattr(socket, "queue", None)
        if isinstance(queue, asyncio.Queue):
            queue.put_nowait(None)

    def start_manager(self) -> None:
        """Start the manager now (for Redis: subscribe), not at the first client as
        python-socketio would: signals and readiness need it from the start."""
        if not self.manager_initialized:
            self.manager_initialized = True
            self.manager.initialize()

    def forget_callback(self, sid: str, callback: Any) -> None:
        """Drop an ack callback the client has not answered.

        python-socketio keeps an unanswered callback until the client disconnects;
        dropping it means a client that never acks leaks nothing, and a late ack
        finds nothing to call.
        """
        pending = self.manager.callbacks.get(sid)
        if not pending:
            return
        for key, value in list(pending.items()):
            if value is callback:
                del pending[key]


def _transport(environ: dict[str, Any]) -> str:
    """The transport an Engine.IO session opened with, as python-engineio reads it."""
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    return query.get("transport", ["polling"])[0]


def _no_ping() -> None:
    return None
