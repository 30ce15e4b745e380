"""A raw Engine.IO v4 / Socket.IO v5 client over aiohttp's WebSocket.

For what well-behaved client libraries never send: garbage frames, duplicate
acknowledgements, and sockets that stop reading.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class RawClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open_engine(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        """WebSocket + Engine.IO open, and no Socket.IO connect."""
        url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.session.ws_connect(url, autoping=False, headers=headers)
        opened = await self.text()
        assert opened.startswith("0"), opened

    async def open(
        self, base_url: str, auth: Any = None, headers: dict[str, str] | None = None
    ) -> str:
        """WebSocket + Engine.IO open + Socket.IO connect; returns the namespace sid."""
        await self.open_engine(base_url, headers)
        return await self.join(auth)

    async def join(self, auth: Any = None) -> str:
        """Socket.IO connect on the open Engine.IO session; returns the namespace sid."""
        await self.send("40" + (json.dumps(auth) if auth is not None else ""))
        while True:
            frame = await self.text()
            if frame.startswith("40"):
                return str(json.loads(frame[2:])["sid"])
            if frame.startswith("44"):
                raise ConnectionRefusedError(frame)

    async def send(self, frame: str | bytes) -> None:
        assert self.ws is not None
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def text(self, timeout: float = 10.0) -> str:
        """The next text frame; answers Engine.IO pings on the way."""
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"socket closed: {msg.type!r}")
                if msg.data == "2":
                    await self.ws.send_str("3")
                    continue
                return str(msg.data)

    async def event(self, name: str, timeout: float = 10.0) -> tuple[int | None, list[Any]]:
        """The next Socket.IO EVENT called ``name``: (ack id or None, arguments)."""
        while True:
            frame = await self.text(timeout)
            if not frame.startswith("42"):
                continue
            body = frame[2:]
            digits = len(body) - len(body.lstrip("0123456789"))
            ack_id = int(body[:digits]) if digits else None
            data = json.loads(body[digits:])
            if data[0] == name:
                return ack_id, data[1:]

    async def ack(self, ack_id: int, timeout: float = 10.0) -> list[Any]:
        """The arguments of the next Socket.IO ACK for ``ack_id`` (other frames skipped)."""
        prefix = f"43{ack_id}"
        while True:
            frame = await self.text(timeout)
            if frame.startswith(prefix) and frame[len(prefix) : len(prefix) + 1] == "[":
                return list(json.loads(frame[len(prefix) :]))

    async def closed(self, timeout: float = 10.0) -> bool:
        """True once the server closed the socket (frames before that are skipped)."""
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return True
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "1":  # Engine.IO close
                    return True

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
