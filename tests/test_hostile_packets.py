"""Packets no client library sends: reserved event names, malformed shapes, deep
nesting, binary attachments, sessions that never join. None reaches the server's
lifecycle, none crashes a handler, and none changes a connection's state."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest

from pns_sio.wire import EV_DISCONNECT

from .support.api import API_TOKEN
from .support.devices import ConnectRefused
from .support.nodes import node_settings
from .support.raw import RawClient

SECRET = "hostile-packets-secret-0123456789abcdef"
RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener"]
RESERVED += ["removeListener", "*", "pns:notification", "new-notifications-count"]


def deep(levels: int) -> str:
    """JSON text of a value nested ``levels`` lists deep."""
    return "[" * levels + "1" + "]" * levels


def event(name: str, payload: str) -> str:
    return f"[{json.dumps(name)},{payload}]"


@pytest.mark.parametrize("event", RESERVED)
async def test_a_reserved_event_name_is_an_unknown_event(start_node, connect, event) -> None:
    node = await start_node(max_connections_per_user=1)
    device = await connect(node, "42")
    await device.wait_count(0)
    answer = await device.emit_call(event, {"user_id": "7"})
    assert answer["ok"] is False and answer["error"]["code"] == "invalid_request"
    assert event in answer["error"]["message"]
    # Nothing about the connection changed: still held, still counted against the limit.
    assert device.sio.connected
    assert node.node.realtime.per_user["42"] == 1
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, "42")
    assert refused.value.error["data"] == {"code": "rate_limited"}


async def test_disconnect_then_connect_events_do_not_outlive_the_token(
    start_node, connect, sqlite_url
) -> None:
    node = await start_node(node_settings(demo=False, store_url=sqlite_url, jwt_secret=SECRET))
    token = jwt.encode({"sub": "42", "exp": int(time.time()) + 2}, SECRET, "HS256")
    fresh = jwt.encode({"sub": "42", "exp": int(time.time()) + 3600}, SECRET, "HS256")
    device = await connect(node, auth={"token": token})
    await device.wait_count(0)
    # A client that plays the server's own lifecycle with events of those names.
    for event, payload in [("disconnect", "client"), ("connect", {"token": fresh})]:
        answer = await device.emit_call(event, payload)
        assert answer["error"]["code"] == "invalid_request"
    await device.until(lambda: any(e == EV_DISCONNECT for e, _ in device.events), timeout=10)
    assert (EV_DISCONNECT, {"code": "token_expired", "reconnect": True}) in device.events


@pytest.mark.parametrize(
    "frame",
    [
        '421{"not": "a list"}',
        "421[]",
        "421[17]",
        '421[null, "x"]',
        '421[["get-new-notifications"]]',
        "421[not json",
        "421" + event("get-new-notifications", deep(200)),
        "421" + event("get-new-notifications", deep(5000)),
    ],
)
async def test_a_malformed_event_answers_invalid_request(start_node, http, frame, caplog) -> None:
    caplog.set_level(logging.INFO)
    node = await start_node()
    client = RawClient(http)
    await client.open(node.url, {"user_id": "42"})
    await client.send(frame)
    answer = await client.ack(1)
    assert answer[0]["ok"] is False
    assert answer[0]["error"]["code"] == "invalid_request"
    # The connection is still there and still answers.
    await client.send('422["get-new-notifications"]')
    assert (await client.ack(2)) == [{"ok": True, "delivered": 0, "has_more": False}]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    await client.close()


async def test_nesting_past_64_levels_is_malformed_but_64_is_not(start_node, http) -> None:
    node = await start_node()
    client = RawClient(http)
    await client.open(node.url, {"user_id": "42"})
    # 64 levels: well-formed JSON, wrong for the schema; 65: refused as malformed.
    await client.send("421" + event("get-new-notifications", deep(63)))
    ok_depth = (await client.ack(1))[0]["error"]["message"]
    await client.send("422" + event("get-new-notifications", deep(64)))
    too_deep = (await client.ack(2))[0]["error"]["message"]
    assert "64 levels" not in ok_depth
    assert "64 levels" in too_deep
    await client.close()


@pytest.mark.parametrize("frame", ["hello", "4", "49", "4/", "9[]", "43", "43[1", "41/x,"])
async def test_garbage_packets_are_dropped_and_logged_without_a_traceback(
    start_node, http, frame, caplog
) -> None:
    caplog.set_level(logging.INFO)
    node = await start_node()
    client = RawClient(http)
    await client.open(node.url, {"user_id": "42"})
    await client.send(frame)
    await client.send('421["get-new-notifications"]')
    assert (await client.ack(1))[0]["ok"] is True
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    await client.close()


async def test_malformed_packets_are_logged_at_a_bounded_rate(start_node, http, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    node = await start_node(event_rate=0)
    client = RawClient(http)
    await client.open(node.url, {"user_id": "42"})
    for _ in range(500):
        await client.send("4zz")
    await client.send('421["get-new-notifications"]')
    assert (await client.ack(1))[0]["ok"] is True
    malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(malformed) <= 20
    assert node.metric("pns_malformed_packets_total") == 500
    await client.close()


async def test_a_packet_announcing_many_attachments_closes_the_connection(start_node, http):
    node = await start_node()
    client = RawClient(http)
    await client.open(node.url, {"user_id": "42"})
    await client.send('451000000-["get-new-notifications",{"_placeholder":true,"num":0}]')
    assert await client.closed()
    assert node.metric("pns_connections_closed_total", reason="malformed") == 1


async def test_a_binary_event_gets_invalid_request(start_node, http) -> None:
    node = await start_node()
    client = RawClient(http)
    await client.open(node.url, {"user_id": "42"})
    await client.send('451-1["get-new-notifications",{"_placeholder":true,"num":0}]')
    await client.send(b"\x00\x01\x02")
    answer = await client.ack(1)
    assert answer[0]["error"]["code"] == "invalid_request"
    await client.close()


async def test_a_session_that_never_joins_is_closed_and_counts_as_a_handshake(
    start_node, http, connect
) -> None:
    node = await start_node(connect_timeout=1.0, handshake_rate=0.01, handshake_burst=2)
    idle = [RawClient(http), RawClient(http)]
    for client in idle:
        await client.open_engine(node.url)
    # Two handshakes spent by sessions that never joined: the next client is refused.
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, "42")
    assert refused.value.error["data"] == {"code": "rate_limited"}
    for client in idle:
        assert await client.closed(timeout=10)


@pytest.mark.parametrize("levels", [65, 5000])
async def test_an_http_body_nested_too_deep_is_a_400(start_node, http, levels) -> None:
    node = await start_node()
    body = '{"user_id": "42", "data": {"a": ' + deep(levels) + "}}"
    async with http.post(
        f"{node.url}/api/v1/notifications",
        data=body,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_request"
    assert (await node.node.store.unseen("42")).count == 0
