"""``DirectEmit`` sends events the way python-socketio's own emit does, without a task
per recipient: to every member of a room but the skipped, and, with a callback, each
recipient's packet with an ack id of its own so every answer reaches the callback.

A bare python-socketio server on aiohttp with ``DirectEmit`` as its manager, and real
Socket.IO clients over TCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from aiohttp import web

from pns_sio.sio.emit import DirectEmit

BOUND = 10.0  # seconds any awaited event gets


class Room:
    """A server with ``DirectEmit``; each client that connects joins room ``r``."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=DirectEmit())
        self.joined: asyncio.Queue[str] = asyncio.Queue()

        @self.sio.event
        async def connect(sid: str, environ: Any) -> None:
            await self.sio.enter_room(sid, "r")
            await self.joined.put(sid)


@pytest.fixture
async def room(aiohttp_server: Any) -> AsyncIterator[tuple[Room, str]]:
    state = Room()
    app = web.Application()
    state.sio.attach(app)
    server = await aiohttp_server(app)
    yield state, str(server.make_url("/"))
    await state.sio.shutdown()  # its Engine.IO service task


Heard = asyncio.Queue[tuple[str, Any]]


async def _client(url: str, name: str, heard: Heard) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)

    @client.on("ask")
    async def ask(data: Any) -> str:
        heard.put_nowait((name, data))
        return f"answer of {name}"

    @client.on("tell")
    async def tell(data: Any) -> None:
        heard.put_nowait((name, data))

    await client.connect(url, transports=["websocket"], wait_timeout=BOUND)
    return client


async def _take(heard: Heard, n: int) -> list[tuple[str, Any]]:
    return sorted([await asyncio.wait_for(heard.get(), BOUND) for _ in range(n)], key=repr)


async def test_an_emit_with_a_callback_hears_every_recipient_once(
    room: tuple[Room, str],
) -> None:
    state, url = room
    heard: Heard = asyncio.Queue()
    clients = [await _client(url, name, heard) for name in ("a", "b")]
    try:
        for _ in clients:
            await asyncio.wait_for(state.joined.get(), BOUND)
        answers: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def callback(*args: Any) -> None:
            answers.put_nowait(args)

        await state.sio.emit("ask", {"n": 1}, room="r", callback=callback)
        got = {await asyncio.wait_for(answers.get(), BOUND) for _ in clients}
        assert got == {("answer of a",), ("answer of b",)}
        assert await _take(heard, 2) == [("a", {"n": 1}), ("b", {"n": 1})]
        # Each recipient's ack id was its own and answered once: none is left waiting
        # (key 0 holds the per-connection id counter).
        assert all(set(pending) == {0} for pending in state.sio.manager.callbacks.values())
    finally:
        for client in clients:
            await client.disconnect()


async def test_an_emit_without_a_callback_skips_the_skipped(room: tuple[Room, str]) -> None:
    state, url = room
    heard: Heard = asyncio.Queue()
    a = await _client(url, "a", heard)
    sid_a = await asyncio.wait_for(state.joined.get(), BOUND)
    b = await _client(url, "b", heard)
    await asyncio.wait_for(state.joined.get(), BOUND)
    try:
        await state.sio.emit("tell", {"n": 2}, room="r", skip_sid=sid_a)
        # Then one both hear: events on one socket arrive in order, so had "a" heard the
        # first, it would be among the first three heard, ahead of its ("a", 3).
        await state.sio.emit("ask", {"n": 3}, room="r")
        assert await _take(heard, 3) == [("a", {"n": 3}), ("b", {"n": 2}), ("b", {"n": 3})]
    finally:
        await a.disconnect()
        await b.disconnect()
