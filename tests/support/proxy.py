"""A small round-robin TCP proxy in front of several nodes (like a load balancer) or
in front of one server (to hold what a node sends it).

Each new client connection goes to the next upstream that accepts; an upstream
that refuses (a killed node) is skipped, so a client that reconnects after a
crash lands on a surviving node. Bytes are copied as they are: WebSocket
clients (one TCP connection per Socket.IO connection) need no sticky sessions.
Loopback only, bounded in connections and connect time; ``close()`` ends
every connection it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence

MAX_CONNECTIONS = 2000
CONNECT_TIMEOUT = 1.0
CHUNK = 64 * 1024


class RoundRobinProxy:
    def __init__(
        self,
        upstreams: Sequence[int],
        *,
        max_connections: int = MAX_CONNECTIONS,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        """``upstreams``: the loopback ports of the nodes, tried in turn."""
        self.upstreams = list(upstreams)
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.port = 0
        self._next = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # upstream port -> connections it took; "refused" -> upstreams that refused
        self.routed: Counter[int | str] = Counter()
        # Cleared by hold(): what clients send waits in the proxy until release().
        self._passing = asyncio.Event()
        self._passing.set()

    def hold(self) -> None:
        """Keep what clients send from reaching the upstreams (answers still flow)."""
        self._passing.clear()

    def release(self) -> None:
        self._passing.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RoundRobinProxy:
        # Port 0: the kernel picks a free port, so no race with other servers.
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RoundRobinProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.upstreams)):
            port = self.upstreams[self._next % len(self.upstreams)]
            self._next += 1
            try:
                async with asyncio.timeout(self.connect_timeout):
                    pair = await asyncio.open_connection("127.0.0.1", port)
            except (OSError, TimeoutError):
                self.routed["refused"] += 1
                continue
            self.routed[port] += 1
            return pair
        return None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._handlers) >= self.max_connections:
            client_w.close()
            return
        self._handlers.add(task)
        self._writers.add(client_w)
        upstream_w: asyncio.StreamWriter | None = None
        try:
            pair = await self._connect_upstream()
            if pair is None:
                return  # every upstream refused: the client sees a closed connection
            upstream_r, upstream_w = pair
            self._writers.add(upstream_w)
            pipes = [
                asyncio.create_task(_copy(client_r, upstream_w, self._passing)),
                asyncio.create_task(_copy(upstream_r, client_w)),
            ]
            try:
                # Either side gone (a node killed, a client closed): end both.
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            for writer in (client_w, upstream_w):
                if writer is not None:
                    self._writers.discard(writer)
                    await _close(writer)
            self._handlers.discard(task)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        # A peer that stopped reading (a frozen process) would keep a flush waiting.
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event | None = None
) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            if gate is not None:
                await gate.wait()
            writer.write(data)
            await writer.drain()
