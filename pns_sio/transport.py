"""The WebSocket under python-engineio, shaped for many small, long-lived connections.

- No permessage-deflate: every compressed WebSocket keeps its own zlib state
  (about 120 KiB per idle connection against 31 KiB without, measured on a
  bare python-socketio server), and notification frames are tiny.
- A bound on unsent frames: a client that stops reading makes its socket's
  queue grow without end. ``SlowClientWatchdog`` looks at every queue every
  two seconds and drops the connection whose queue passed the bound, so a node's
  memory stays bounded whatever its clients do.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any

import socketio
from aiohttp.web import WebSocketResponse

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 2.0


class PNSWebSocket:
    """python-engineio's aiohttp WebSocket wrapper, without compression and abortable."""

    # engineio socket -> the wrapper carrying its WebSocket (for the watchdog)
    live: weakref.WeakKeyDictionary[Any, PNSWebSocket] = weakref.WeakKeyDictionary()

    def __init__(self, handler: Callable[[Any], Any], server: Any) -> None:
        self.handler = handler
        self.server = server
        self._sock: WebSocketResponse | None = None
        self._request: Any = None

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._request = request
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        owner = getattr(self.handler, "__self__", None)  # the engineio socket
        if owner is not None:
            PNSWebSocket.live[owner] = self
        await self.handler(self)
        return self._sock

    async def close(self) -> None:
        assert self._sock is not None
        await self._sock.close()

    def abort(self) -> None:
        """Drop the TCP connection now; the engineio loops see it closed and clean up."""
        transport = getattr(self._request, "transport", None)
        if transport is not None:
            transport.abort()

    async def send(self, message: str | bytes) -> None:
        assert self._sock is not None
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)

    async def wait(self) -> str | bytes:
        assert self._sock is not None
        msg = await self._sock.receive()
        if not isinstance(msg.data, bytes | str):
            raise OSError()
        return msg.data


def install(sio: socketio.AsyncServer) -> None:
    """Make ``sio``'s Engine.IO server use ``PNSWebSocket`` (its own copy of the driver table)."""
    sio.eio._async = {**sio.eio._async, "websocket": PNSWebSocket}


class SlowClientWatchdog:
    """Drops connections whose queue of unsent frames passed ``max_queued`` frames."""

    def __init__(
        self, sio: socketio.AsyncServer, max_queued: int, on_drop: Callable[[], None]
    ) -> None:
        self.sio = sio
        self.max_queued = max_queued
        self.on_drop = on_drop

    async def run(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            await self.check()

    async def check(self) -> int:
        dropped = 0
        for eio_socket in list(self.sio.eio.sockets.values()):
            queue = getattr(eio_socket, "queue", None)
            if queue is None or queue.qsize() <= self.max_queued or eio_socket.closed:
                continue
            logger.info("dropping a client that stopped reading (%d frames queued)", queue.qsize())
            dropped += 1
            self.on_drop()
            wrapper = PNSWebSocket.live.get(eio_socket)
            if wrapper is not None:
                wrapper.abort()
            result = eio_socket.close(wait=False, abort=True)
            if inspect.isawaitable(result):
                await result
        return dropped
