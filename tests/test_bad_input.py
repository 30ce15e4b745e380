"""Bad input: random and hostile payloads get the protocol's error; nothing crashes or changes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support.api import API_TOKEN, notify
from .support.raw import RawClient

SHARED = settings(
    max_examples=150,
    deadline=None,
    # One node and one device serve every example: that is the point (it must survive them).
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
payloads = (
    json_values
    | st.binary(max_size=200)
    | st.dictionaries(
        st.sampled_from(["limit", "received", "user_id", "extra"]), json_values, max_size=3
    )
)


@pytest.fixture
async def target(start_node, connect, http):
    """A node with rate limits off, one device that accepts nothing, and one unseen notification."""
    node = await start_node(event_rate=0, api_rate=0)
    device = await connect(node, "42")
    device.ack_with = lambda batch: {"received": []}
    await notify(http, node, "42")
    await device.wait_count(1)
    return node, device


async def unchanged(node) -> None:
    unseen = await node.node.store.unseen("42")
    assert unseen.count == 1
    assert unseen.rev == 1


@SHARED
@given(payload=payloads)
async def test_random_fetch_payloads_get_an_answer_and_change_nothing(target, payload) -> None:
    node, device = target
    answer = await device.fetch(payload if isinstance(payload, tuple) else (payload,))
    assert answer["ok"] is True or answer["error"]["code"] == "invalid_request", answer
    if answer["ok"]:
        assert answer["delivered"] == 0
    assert device.sio.connected
    await unchanged(node)


@SHARED
@given(event=st.text(min_size=1, max_size=40), args=st.lists(payloads, max_size=3))
async def test_random_events_get_invalid_request(target, event, args) -> None:
    node, device = target
    if event in ("get-new-notifications", "connect", "disconnect", "message"):
        return
    answer = await device.emit_call(event, *args) if args else await device.emit_call(event, ())
    assert answer == {
        "ok": False,
        "error": {"code": "invalid_request", "message": answer["error"]["message"]},
    }
    assert device.sio.connected
    await unchanged(node)


@pytest.mark.parametrize("args", [(), ({"limit": 1},), ("someone-elses-sid", 1)])
async def test_an_event_named_like_the_catch_all_gets_invalid_request(target, args) -> None:
    # python-socketio looks the event name up among the handlers first, and "*" is the
    # catch-all's own key: without care the catch-all is called without the event name.
    node, device = target
    answer = await device.emit_call("*", *args)
    assert answer == {
        "ok": False,
        "error": {"code": "invalid_request", "message": "unknown event '*'"},
    }
    assert device.sio.connected
    await unchanged(node)


@SHARED
@given(body=payloads)
async def test_random_http_bodies_are_refused_with_nothing_stored(target, http, body) -> None:
    node, _ = target
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(
        f"{node.url}/api/v1/notifications",
        data=raw,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
    ) as response:
        answer = await response.json()
    valid = (
        isinstance(body, dict)
        and set(body) == {"user_id", "data"}
        and isinstance(body.get("data"), dict)
    )
    if response.status == 201:
        assert valid
        return
    assert response.status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
    await unchanged(node)


GARBAGE: list[str | bytes] = [
    "",
    "x",
    "4",
    "42",
    "42[",
    '42["get-new-notifications"',
    '451-["get-new-notifications",{"_placeholder":true,"num":0}]',
    "43999[]",
    "40/nope,",
    "6",
    "\x00\xff",
    b"\x00\x01\x02garbage",
    "9" * 1000,
]


@pytest.mark.parametrize("frame", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_frames_hurt_no_one_else(start_node, connect, http, frame) -> None:
    node = await start_node()
    bystander = await connect(node, "42")
    await bystander.wait_count(0)
    rogue = RawClient(http)
    await rogue.open(node.url, {"user_id": "666"})
    await rogue.send(frame)
    await notify(http, node, "42")
    await bystander.wait_count(1)
    assert await bystander.fetch() == {"ok": True, "delivered": 1, "has_more": False}
    async with http.get(f"{node.url}/healthz") as response:
        assert response.status == 200
    await rogue.close()


async def test_a_message_over_the_limit_closes_only_that_connection(start_node, connect, http):
    node = await start_node(max_message_bytes=4096)
    bystander = await connect(node, "42")
    big = await connect(node, "42")
    await big.sio.emit("get-new-notifications", {"limit": 5, "pad": "x" * 8000})
    await big.disconnected.wait()
    await notify(http, node, "42")
    await bystander.wait_count(1)
    assert bystander.sio.connected


async def test_a_duplicate_ack_marks_once(start_node, http, connect) -> None:
    node = await start_node()
    watcher = await connect(node, "42")
    await notify(http, node, "42")
    await watcher.wait_count(1)
    raw = RawClient(http)
    await raw.open(node.url, {"user_id": "42"})
    await raw.send('420["get-new-notifications",{"limit":5}]')
    ack_id, args = await raw.event("new-notifications")
    assert ack_id is not None and len(args[0]["notifications"]) == 1
    await raw.send(f"43{ack_id}[]")
    await raw.send(f"43{ack_id}[]")
    answer: Any = None
    while answer is None:
        frame = await raw.text()
        if frame.startswith("430"):
            answer = json.loads(frame[3:])[0]
    assert answer == {"ok": True, "delivered": 1, "has_more": False}
    await watcher.wait_count(0)
    assert (await node.node.store.unseen("42")).rev == 2  # one create, one mark: not two
    await raw.close()
