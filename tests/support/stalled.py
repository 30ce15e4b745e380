"""A WebSocket client that stops reading, on a socket with a tiny receive buffer.

It speaks just enough Engine.IO / Socket.IO to join (demo auth), reads the
frames up to its first count, then reads nothing more. Its receive buffer is
a few KiB, so the kernel stops taking the node's frames after a few of them and
the node's side of the connection backs up at once: the same state as a
client on a dead link or one that never reads, reached in a bounded number of
frames on any machine. ``keep_talking`` sends an Engine.IO pong now and then,
so the connection never looks silent to the node (a malicious client's way).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from typing import Any

from pns_sio.sio.websocket import PNSWebSocket

RECEIVE_BUFFER = 4096
HANDSHAKE_TIMEOUT = 10.0


def _frame(text: str) -> bytes:
    """One masked text frame, as a client must send it."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class StalledClient:
    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._talker: asyncio.Task[None] | None = None
        self.sid = ""

    async def open(self, port: int, auth: Any) -> None:
        """Connect, join the namespace, and read up to the first count event."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect: the window the client offers is fixed in the handshake.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # A small stream limit too: asyncio stops reading the socket once that much waits.
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=RECEIVE_BUFFER)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            status = await self.reader.readuntil(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 101"), status
            opened = await self._text()
            assert opened.startswith("0"), opened
            self.writer.write(_frame("40" + json.dumps(auth)))
            while True:
                text = await self._text()
                if text.startswith("40"):
                    self.sid = str(json.loads(text[2:])["sid"])
                elif text.startswith("42") and "new-notifications-count" in text:
                    return

    def shrink_node_side(self, node: Any) -> None:
        """Give the node's end of this connection a small, fixed send buffer.

        The kernel otherwise grows a loopback send buffer to megabytes, so the node's
        writes go on succeeding long after the client stopped reading; with a fixed
        small buffer the node's transport backs up from the first frames (as on a
        busy host or a slow link), which is where a write that waits would wait.
        """
        assert self.writer is not None
        mine = self.writer.get_extra_info("sockname")
        for wrapper in PNSWebSocket.live.values():
            transport = wrapper._request.transport
            if transport is not None and transport.get_extra_info("peername") == mine:
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECEIVE_BUFFER)
                return
        raise AssertionError("the node holds no connection from this client")

    def connected_to(self, node: Any) -> bool:
        """Whether ``node`` (a RunningNode) still holds this client's connection."""
        return self.sid in node.node.realtime.connections

    async def _text(self) -> str:
        assert self.reader is not None
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        payload = await self.reader.readexactly(length)
        assert first & 0x0F == 0x1, f"expected a text frame, got opcode {first & 0x0F}"
        return payload.decode()

    def keep_talking(self, every: float = 0.5, times: int = 240) -> None:
        """Send an Engine.IO pong every ``every`` seconds (bounded), reading nothing."""

        async def talk() -> None:
            for _ in range(times):
                assert self.writer is not None
                self.writer.write(_frame("3"))
                await asyncio.sleep(every)

        self._talker = asyncio.create_task(talk())

    async def close(self) -> None:
        if self._talker is not None:
            self._talker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._talker
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
