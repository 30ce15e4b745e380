"""Abuse and access: rate limits, expiring tokens, slow readers, nobody let in."""

from __future__ import annotations

import asyncio
import logging
import time

import jwt
import pytest

from pns_sio.sio.websocket import waiting_frames
from pns_sio.wire import EV_DISCONNECT, user_room

from .support.api import API_TOKEN, notify
from .support.devices import ConnectRefused
from .support.nodes import node_settings
from .support.stalled import StalledClient
from .support.waiting import eventually

SECRET = "abuse-tests-secret-0123456789abcdef"


async def test_events_past_the_rate_are_refused_and_the_connection_stays(start_node, connect):
    node = await start_node(event_rate=0.01, event_burst=3)
    device = await connect(node, "42")
    answers = [await device.emit_call("ping-me") for _ in range(5)]
    codes = [a["error"]["code"] for a in answers]
    assert codes == ["invalid_request"] * 3 + ["rate_limited"] * 2
    assert device.sio.connected


async def test_a_flooding_connection_is_closed_without_reconnect(start_node, connect) -> None:
    node = await start_node(event_rate=0.01, event_burst=1)
    device = await connect(node, "42")
    for _ in range(120):
        await device.sio.emit("flood", {"x": 1})
    await device.until(lambda: any(e == EV_DISCONNECT for e, _ in device.events))
    assert (EV_DISCONNECT, {"code": "rate_limited", "reconnect": False}) in device.events
    await asyncio.wait_for(device.disconnected.wait(), 10)


async def test_connections_per_user_are_bounded(start_node, connect) -> None:
    node = await start_node(max_connections_per_user=2)
    first = await connect(node, "42")
    await connect(node, "42")
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, "42")
    assert refused.value.error == {"message": "rate_limited", "data": {"code": "rate_limited"}}
    await connect(node, "7")  # another user is not affected
    await first.sio.disconnect()
    await eventually(lambda: node.node.realtime.per_user["42"] == 1)
    await connect(node, "42")


async def test_handshakes_per_address_are_bounded(start_node, connect) -> None:
    node = await start_node(handshake_rate=0.01, handshake_burst=2)
    await connect(node, "1")
    await connect(node, "2")
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, "3")
    assert refused.value.error["data"] == {"code": "rate_limited"}


async def test_forwarded_for_counts_only_from_a_trusted_proxy(start_node, connect) -> None:
    trusting = await start_node(
        handshake_rate=0.01, handshake_burst=1, trusted_proxies=("127.0.0.1",)
    )
    await connect(trusting, "1", headers={"X-Forwarded-For": "198.51.100.1"})
    await connect(trusting, "2", headers={"X-Forwarded-For": "198.51.100.2"})
    with pytest.raises(ConnectRefused):
        await connect(trusting, "3", headers={"X-Forwarded-For": "198.51.100.1"})
    # Without trust the header is the client's own word: ignored.
    plain = await start_node(handshake_rate=0.01, handshake_burst=1)
    await connect(plain, "1", headers={"X-Forwarded-For": "198.51.100.1"})
    with pytest.raises(ConnectRefused):
        await connect(plain, "2", headers={"X-Forwarded-For": "198.51.100.2"})


async def test_http_api_is_rate_limited_per_token(start_node, http) -> None:
    node = await start_node(demo=False, jwt_secret=SECRET, api_rate=0.01, api_burst=2)
    statuses = []
    for _ in range(3):
        async with http.post(
            f"{node.url}/api/v1/notifications",
            json={"user_id": "42", "data": {}},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as response:
            statuses.append(response.status)
            last = response
            body = await response.json()
    assert statuses == [201, 201, 429]
    assert body["error"]["code"] == "rate_limited"
    assert int(last.headers["Retry-After"]) >= 1
    assert (await node.node.store.unseen("42")).count == 2


async def test_connection_closes_when_its_token_expires(start_node, connect, sqlite_url) -> None:
    node = await start_node(node_settings(demo=False, store_url=sqlite_url, jwt_secret=SECRET))
    token = jwt.encode({"sub": "42", "exp": int(time.time()) + 2}, SECRET, "HS256")
    device = await connect(node, auth={"token": token})
    await device.wait_count(0)
    await device.until(lambda: any(e == EV_DISCONNECT for e, _ in device.events), timeout=10)
    assert (EV_DISCONNECT, {"code": "token_expired", "reconnect": True}) in device.events
    await asyncio.wait_for(device.disconnected.wait(), 10)
    assert node.metric("pns_connections_closed_total", reason="token_expired") == 1


async def test_a_client_that_stops_reading_holds_up_nobody(start_node, connect, http) -> None:
    # Pings far apart: only the slow-reader watchdog may close the stalled client.
    node = await start_node(max_queued_frames=200, ping_interval=60.0, ping_timeout=60.0)
    reader = await connect(node, "42")
    await reader.wait_count(0)
    stalled = StalledClient()
    await stalled.open(node.settings.port, {"user_id": "42"})
    stalled.shrink_node_side(node)
    stalled.keep_talking()  # never silent: only its unread frames give it away
    # Big frames until the stalled socket backs up (each past aiohttp's 64 KiB drain
    # step, so a write that may wait for the client does), then small ones until the
    # backlog passes the bound. Bounded: 200 x 70 KB is far past what its buffers hold.
    sent = 0
    for text in ["x" * 70_000] * 200 + ["y"] * 400:
        if waiting_frames_of(node) > 200:
            break
        if len(text) > 1 and waiting_frames_of(node) > 0:
            continue
        # PROTOCOL: no emit waits on a client that stops reading. Were it to, this
        # emit would hang until the watchdog dropped the stalled client.
        async with asyncio.timeout(10):
            await node.node.sio.emit("app-event", {"text": text}, room=user_room("42"))
        sent += 1
        assert stalled.connected_to(node), "an emit waited until the stalled client was dropped"
    assert waiting_frames_of(node) > 200, "the stalled client's frames never backed up"
    await eventually(lambda: node.metric("pns_connections_closed_total", reason="slow_reader") == 1)
    await eventually(lambda: len(node.node.realtime.connections) == 1)
    # The reading device got every frame and stays.
    await reader.until(lambda: sum(e == "app-event" for e, _ in reader.events) == sent)
    await notify(http, node, "42")
    await reader.wait_count(1)
    await stalled.close()


def waiting_frames_of(node) -> int:
    """The most frames any of the node's connections has waiting for its client."""
    return max((waiting_frames(s) for s in node.node.sio.eio.sockets.values()), default=0)


async def test_no_event_lets_a_client_join_another_users_room(start_node, connect, http) -> None:
    node = await start_node()
    alice = await connect(node, "alice")
    for event, payload in [
        ("join", {"room": "user:bob"}),
        ("enter_room", "user:bob"),
        ("get-new-notifications", {"limit": 5, "user_id": "bob"}),
    ]:
        answer = await alice.emit_call(event, payload)
        assert answer["ok"] is False and answer["error"]["code"] == "invalid_request"
    await notify(http, node, "bob")
    await notify(http, node, "alice")
    await alice.wait_count(1)
    assert all(c["count"] <= 1 for c in alice.count_events())


async def test_secrets_never_reach_logs_or_metrics(start_node, connect, http, caplog, sqlite_url):
    caplog.set_level(logging.DEBUG)
    node = await start_node(
        node_settings(demo=False, store_url=sqlite_url, jwt_secret=SECRET, log_level="DEBUG")
    )
    good = jwt.encode({"sub": "secret-user-77", "exp": int(time.time()) + 60}, SECRET, "HS256")
    bad = jwt.encode({"sub": "x"}, "another-secret-0123456789abcdefghij", "HS256")
    device = await connect(node, auth={"token": good}, headers={"Cookie": "session=cookie-value-9"})
    await device.wait_count(0)
    with pytest.raises(ConnectRefused):
        await connect(node, auth={"token": bad})
    async with http.post(
        f"{node.url}/api/v1/notifications",
        json={"user_id": "x", "data": {}},
        headers={"Authorization": "Bearer wrong-token-value"},
    ) as response:
        assert response.status == 401
    async with http.get(f"{node.url}/metrics") as response:
        metrics = await response.text()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (SECRET, good, bad, API_TOKEN, "wrong-token-value", "cookie-value-9"):
        assert secret not in logs
        assert secret not in metrics
    assert "secret-user-77" not in metrics
