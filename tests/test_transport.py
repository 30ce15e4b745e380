"""The Engine.IO loop under each WebSocket (pns_sio/sio/websocket.py): pings, upgrades from
long-polling, no task per connection beyond aiohttp's, and a client that reads nothing."""

from __future__ import annotations

import asyncio

import aiohttp

from .support.api import notify
from .support.raw import RawClient
from .support.waiting import eventually


class PingCounter(RawClient):
    """A raw client that answers Engine.IO pings and counts them."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(session)
        self.pings = 0

    async def frames_until_pings(self, pings: int, timeout: float) -> list[str]:
        """Read (and answer) until ``pings`` pings came; returns the other text frames."""
        assert self.ws is not None
        frames: list[str] = []
        async with asyncio.timeout(timeout):
            while self.pings < pings:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"socket closed: {msg.type!r}")
                if msg.data == "2":
                    self.pings += 1
                    await self.ws.send_str("3")
                else:
                    frames.append(str(msg.data))
        return frames


async def test_pings_keep_answering_clients_connected(start_node, http) -> None:
    # Five ping rounds take longer than interval + timeout: the connection lives on
    # pongs alone, and still gets counts afterwards.
    node = await start_node(ping_interval=0.3, ping_timeout=0.5)
    client = PingCounter(http)
    await client.open(node.url, {"user_id": "42"})
    await client.frames_until_pings(5, timeout=10)
    assert len(node.node.realtime.connections) == 1
    await notify(http, node, "42")
    _, args = await client.event("new-notifications-count")
    assert args == [{"count": 1, "rev": 1}]
    await client.close()


async def test_a_client_that_stops_answering_pings_is_closed(start_node, http) -> None:
    node = await start_node(ping_interval=0.3, ping_timeout=0.5)
    client = RawClient(http)
    await client.open(node.url, {"user_id": "42"})
    assert client.ws is not None
    # Read without answering: the node must give up on its own.
    async with asyncio.timeout(10):
        while True:
            msg = await client.ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
    await eventually(lambda: node.node.realtime.connections == {})


async def test_a_polling_client_upgrades_and_is_served(node, connect, http) -> None:
    # Connections that start on long-polling keep python-engineio's own loop.
    device = await connect(node, "42", transports=["polling", "websocket"])
    await device.wait_count(0)
    # The upgrade sends the application no event: poll the client's transport.
    await eventually(lambda: device.sio.transport() == "websocket")
    await notify(http, node, "42")
    await device.wait_count(1)
    answer = await device.fetch()
    assert answer == {"ok": True, "delivered": 1, "has_more": False}
    await device.wait_count(0)


async def test_a_polling_only_client_is_served(node, connect, http) -> None:
    device = await connect(node, "42", transports=["polling"])
    await device.wait_count(0)
    await notify(http, node, "42")
    await device.wait_count(1)
    assert (await device.fetch())["delivered"] == 1


async def test_an_idle_connection_adds_no_task_to_the_web_servers(start_node, http) -> None:
    # python-engineio's loop kept a writer task, a ping task (the first one sleeping
    # out the whole ping interval) and a task per frame waiting beside each
    # connection; memory per connection is the node's limit.
    node = await start_node(ping_interval=1.0, ping_timeout=10)
    first = PingCounter(http)  # starts the node's per-server tasks
    await first.open(node.url, {"user_id": "first"})
    await first.event("new-notifications-count")
    before = len(asyncio.all_tasks())
    clients = [PingCounter(http) for _ in range(20)]
    for i, client in enumerate(clients):
        await client.open(node.url, {"user_id": str(i)})
        await client.event("new-notifications-count")
    assert len(node.node.realtime.connections) == 21
    # Raw clients run no task of their own: what was added is the node's, and aiohttp
    # itself runs two per connection (the protocol's and the request handler's).
    assert len(asyncio.all_tasks()) - before <= 2 * 20
    # And every connection is still pinged (and answers), the first ping included.
    await asyncio.gather(*(c.frames_until_pings(2, timeout=10) for c in [first, *clients]))
    for client in [first, *clients]:
        await client.close()


async def test_a_long_poll_left_waiting_by_a_closed_session_is_answered_at_once(
    start_node, connect
) -> None:
    # A polling client always has a poll waiting; polls wait up to ping interval +
    # timeout (60 s here) for something to send.
    node = await start_node(ping_interval=30.0, ping_timeout=30.0)
    device = await connect(node, "42", transports=["polling"])
    await device.wait_count(0)
    # The client's disconnect waits for its poll to end. Were the server to leave that
    # poll to its timeout, this would take a minute (and hold a stopping node's web
    # server as long).
    async with asyncio.timeout(10):
        await device.sio.disconnect()
    await eventually(lambda: not node.node.realtime.connections)
