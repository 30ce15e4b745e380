"""The WebSocket under python-engineio, shaped for many small, long-lived connections.

- No permessage-deflate: every compressed WebSocket keeps its own zlib state
  (about 120 KiB per idle connection against 31 KiB without, measured on a
  bare python-socketio server), and notification frames are tiny.
- One task per connection. python-engineio's own loop runs a writer task and
  a ping task beside each connection, and a new task for every frame it
  receives and for every wake-up of the writer. ``EngineIOLoop`` reads frames
  in the connection's own task, writes packets straight to the socket, and
  pings from a timer; the socket's own packet queue, unused from then on,
  gives way to one shared stand-in. About 8 KiB less per connection and
  20 % more connections accepted per second (bench/RESULTS.md). Connections that start
  on long-polling and upgrade keep python-engineio's loop.
- A bound on unsent frames: a client that stops reading makes its frames
  pile up. ``SlowClientWatchdog`` looks at every connection every two seconds
  and drops the one with more frames waiting than the bound, so a node's
  memory stays bounded whatever its clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import socketio
from aiohttp.web import WebSocketResponse
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from .. import deadlines
from ..quiet_log import QuietLog

logger = logging.getLogger(__name__)
_quiet = QuietLog(logger)

WATCH_INTERVAL = 2.0
FRAME_HEADER_MAX = 14  # a WebSocket frame's header: 2 bytes, 8 of length, 4 of mask


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
        if owner is None or owner.connected:
            # An upgrade from long-polling: python-engineio's loop knows that dance.
            await self.handler(self)
        else:
            await EngineIOLoop(owner, self).run()
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

    def takes_at_once(self, size: int) -> bool:
        """True when a frame of ``size`` bytes can be written without anyone waiting.

        aiohttp's writer awaits the transport's drain once it has written 64 KiB
        while the transport is paused, and the transport pauses when its buffer
        passes the high-water mark; it resumes only at the low-water mark. So a
        write can never wait when the buffer is at or under the low mark (not
        paused) and stays at or under the high mark after it (not pausing).
        """
        transport = getattr(self._request, "transport", None)
        if transport is None or transport.is_closing():
            return False
        low, high = transport.get_write_buffer_limits()
        buffered = int(transport.get_write_buffer_size())
        return bool(buffered <= low and buffered + size + FRAME_HEADER_MAX <= high)


class _NoQueue:
    """Stands in for python-engineio's per-socket ``asyncio.Queue`` once ``EngineIOLoop``
    writes the socket's packets itself: an idle Queue holds four deques and an Event,
    about 2.3 KiB per connection. Shared by every socket, always empty; the library only
    waits on it when closing."""

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    async def join(self) -> None:
        return None

    async def put(self, item: Any) -> None:
        raise RuntimeError("EngineIOLoop writes this socket's packets itself")

    def put_nowait(self, item: Any) -> None:
        raise RuntimeError("EngineIOLoop writes this socket's packets itself")


NO_QUEUE = _NoQueue()


class EngineIOLoop:
    """One WebSocket connection's Engine.IO loop, in the connection's own task.

    Same protocol as python-engineio's loop (whose socket object it drives:
    ``receive``, ``close`` and the ping bookkeeping stay the library's), with
    less per frame: packets are written straight to the socket, and only when
    the client stops taking bytes do they wait, in order, in ``backlog`` for
    one flusher task.
    """

    def __init__(self, eio_socket: Any, ws: PNSWebSocket) -> None:
        self.eio_socket = eio_socket
        self.ws = ws
        self.backlog: deque[str | bytes] | None = None  # made on the first congestion
        self._flusher: asyncio.Task[None] | None = None
        # Pings and the silence watch are deadlines shared by every connection of the
        # loop (one timer each, not two per connection). The watch re-arms itself from
        # the last frame heard, so a frame costs one clock read instead of moving it.
        self._pings = deadlines.shared("engineio-ping", EngineIOLoop._send_ping)
        self._watch = deadlines.shared("engineio-silence", EngineIOLoop._check_silence)
        self._heard = 0.0
        self._silence = 0.0

    async def run(self) -> None:
        s, server = self.eio_socket, self.eio_socket.server
        loop = asyncio.get_running_loop()
        s.connected = True
        s.upgraded = True
        # The OPEN packet was queued before the WebSocket was ready.
        while not s.queue.empty():
            queued = s.queue.get_nowait()
            s.queue.task_done()
            if queued is not None:
                await self._write(queued.encode())
        s.queue = NO_QUEUE
        # Instance attributes: this socket's packets and pings now go through here.
        s.pns_loop = self
        s.send = self.send
        s.schedule_ping = self.schedule_ping
        self._silence = server.ping_interval + server.ping_timeout
        self._heard = loop.time()
        self._watch.set(self, self._heard + self._silence)
        if s.__dict__.pop("pns_first_ping", False):
            # Connected straight over WebSocket: the library started no ping task for
            # it (Server._handle_eio_connect), so the first ping is this loop's too.
            s.last_ping = True
            self.schedule_ping()
        try:
            while True:
                data = await self.ws.wait()
                self._heard = loop.time()
                if len(data) > server.max_http_buffer_size:
                    break
                try:
                    await s.receive(eio_packet.Packet(encoded_packet=data))
                except eio_exceptions.SocketIsClosedError:
                    break
                except Exception as exc:  # not an Engine.IO packet: dropped, never fatal
                    _quiet.info("malformed engine.io frame: %s", type(exc).__name__)
        except (OSError, ValueError):
            pass  # closed by the client or for its silence, or garbage
        except Exception:
            logger.exception("unexpected error reading a websocket")
        finally:
            self._pings.cancel(self)
            self._watch.cancel(self)
        await self.ws.close()
        await s.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        # The socket and this loop point at each other: part them, so both are freed
        # when the connection ends instead of at the next cyclic GC pass. A late send
        # meets python-engineio's own, which refuses a closed socket.
        for name in ("send", "schedule_ping", "pns_loop"):
            s.__dict__.pop(name, None)

    def _check_silence(self) -> None:
        due = self._heard + self._silence
        if asyncio.get_running_loop().time() < due:
            self._watch.set(self, due)
        else:  # nothing, not even a pong, for ping interval + timeout: gone
            self.ws.abort()

    async def send(self, pkt: Any) -> None:
        """python-engineio's ``send``: refuse when the client timed out, else write."""
        if not await self.eio_socket.check_ping_timeout():
            return
        data = pkt.encode()
        # PROTOCOL: a client that stops reading delays nobody else. Whoever emits
        # (a count push, the Redis listener, a batch) never waits on this socket:
        # the frame is written only when the write cannot wait for a drain, and
        # otherwise queued for this connection's own flusher task.
        size = len(data) if isinstance(data, bytes) or data.isascii() else 4 * len(data)
        if self._flusher is None and self.ws.takes_at_once(size):
            await self._write(data)
            return
        if self.backlog is None:
            self.backlog = deque()
        self.backlog.append(data)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())

    async def _write(self, data: str | bytes) -> None:
        try:
            await self.ws.send(data)
        except Exception:  # the connection broke: the read side sees it and cleans up
            self.ws.abort()

    async def _flush(self) -> None:
        try:
            while self.backlog:
                await self._write(self.backlog.popleft())
        finally:
            self._flusher = None

    async def _ping_now(self) -> None:
        # The socket may close between the timer and this task: then nobody is owed a ping.
        with contextlib.suppress(eio_exceptions.SocketIsClosedError):
            await self.send(eio_packet.Packet(eio_packet.PING))

    def schedule_ping(self) -> None:
        """python-engineio's ``schedule_ping``: the next ping ``ping_interval`` after a pong,
        from a timer instead of a sleeping task."""
        s = self.eio_socket
        if s.last_ping:
            s.last_ping = None
            self._pings.set(self, asyncio.get_running_loop().time() + s.server.ping_interval)

    def _send_ping(self) -> None:
        s = self.eio_socket
        if not s.closing and not s.closed:
            s.last_ping = time.time()
            task = asyncio.ensure_future(self._ping_now())
            _pings_in_flight.add(task)
            task.add_done_callback(_pings_in_flight.discard)


_pings_in_flight: set[asyncio.Future[None]] = set()


def waiting_frames(eio_socket: Any) -> int:
    """Frames a connection's client has not been able to take yet."""
    loop = getattr(eio_socket, "pns_loop", None)
    if loop is not None:
        return len(loop.backlog) if loop.backlog else 0
    queue = getattr(eio_socket, "queue", None)  # long-polling, or upgraded from it
    return queue.qsize() if queue is not None else 0


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
            if eio_socket.closed:
                continue
            waiting = waiting_frames(eio_socket)
            if waiting <= self.max_queued:
                continue
            logger.info("dropping a client that stopped reading (%d frames queued)", waiting)
            dropped += 1
            self.on_drop()
            wrapper = PNSWebSocket.live.get(eio_socket)
            if wrapper is not None:
                wrapper.abort()
            result = eio_socket.close(wait=False, abort=True)
            if inspect.isawaitable(result):
                await result
        return dropped
