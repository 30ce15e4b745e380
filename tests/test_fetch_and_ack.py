"""PROTOCOL "get-new-notifications" and "new-notifications": at-least-once delivery."""

from __future__ import annotations

import asyncio

import pytest

from .support.api import notify
from .support.devices import ConnectDevice
from .support.nodes import StartNode
from .support.outages import sqlite_write_locked
from .support.waiting import eventually


def error_code(answer: dict) -> str:
    assert answer["ok"] is False, answer
    return str(answer["error"]["code"])


async def unseen(node, user: str) -> int:
    return (await node.node.store.unseen(user)).count


async def test_fetch_delivers_oldest_first_and_ack_marks_seen_everywhere(
    node, connect: ConnectDevice, http
) -> None:
    reader = await connect(node, "42")
    other_device = await connect(node, "42")
    ids = [await notify(http, node, "42", {"n": n}) for n in range(3)]
    await other_device.wait_count(3)
    answer = await reader.fetch({"limit": 10})
    assert answer == {"ok": True, "delivered": 3, "has_more": False}
    batch = next(data for event, data in reader.events if event == "new-notifications")
    assert [n["id"] for n in batch["notifications"]] == ids
    assert [n["data"] for n in batch["notifications"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(n["created_at"].endswith("Z") for n in batch["notifications"])
    await other_device.wait_count(0)
    await reader.wait_count(0)
    assert await unseen(node, "42") == 0


async def test_fetch_with_nothing_unseen_answers_at_once_and_sends_no_batch(node, connect) -> None:
    device = await connect(node, "42")
    assert await device.fetch() == {"ok": True, "delivered": 0, "has_more": False}
    assert [e for e, _ in device.events if e == "new-notifications"] == []


async def test_limit_and_has_more(node, connect, http) -> None:
    device = await connect(node, "42")
    ids = [await notify(http, node, "42", {"n": n}) for n in range(3)]
    assert await device.fetch({"limit": 2}) == {"ok": True, "delivered": 2, "has_more": True}
    assert device.delivered_ids == ids[:2]
    await device.wait_count(1)
    assert await device.fetch() == {"ok": True, "delivered": 1, "has_more": False}
    assert device.delivered_ids == ids


async def test_unacked_batch_times_out_and_is_redelivered(start_node: StartNode, connect, http):
    node = await start_node(ack_timeout=0.5)
    device = await connect(node, "42", ack_mode="manual")
    nid = await notify(http, node, "42")
    fetching = asyncio.create_task(device.fetch())
    batch, ack = await device.next_batch()
    assert [n["id"] for n in batch["notifications"]] == [nid]
    assert error_code(await fetching) == "timeout"
    # No waiter is left behind for the unanswered batch.
    sid = device.sio.get_sid()
    assert [k for k in node.node.sio.manager.callbacks.get(sid, {}) if k != 0] == []
    ack.set_result(None)  # the late ack marks nothing
    assert await unseen(node, "42") == 1
    device.ack_mode = "auto"
    assert await device.fetch() == {"ok": True, "delivered": 1, "has_more": False}
    assert device.delivered_ids == [nid, nid]


async def test_disconnect_before_ack_marks_nothing_and_redelivers(node, connect, http) -> None:
    first = await connect(node, "42", ack_mode="manual")
    nid = await notify(http, node, "42")
    # The client's own call gives up soon: the answer never comes once it disconnects.
    fetching = asyncio.create_task(first.fetch(timeout=0.5))
    await first.next_batch()
    sid = first.sio.get_sid()
    await first.sio.disconnect()
    with pytest.raises(Exception):  # noqa: B017 - the answer never comes
        await fetching
    await first.sio.shutdown()
    assert await unseen(node, "42") == 1
    await eventually(lambda: node.node.realtime.connections == {})
    assert sid not in node.node.sio.manager.callbacks
    again = await connect(node, "42")
    await again.wait_count(1)
    assert await again.fetch() == {"ok": True, "delivered": 1, "has_more": False}
    assert again.delivered_ids == [nid]


@pytest.mark.parametrize(
    ("ack", "marked"),
    [
        (None, "all"),  # no argument
        ((None,), "all"),  # null
        ({"received": []}, "none"),
        ({"received": ["FIRST"]}, "first"),
        ({"received": ["FIRST", "000000000000000000000000"]}, "first"),
    ],
    ids=["no-argument", "null", "empty-received", "one-received", "foreign-id-ignored"],
)
async def test_acknowledgement_forms(node, connect, http, ack, marked) -> None:
    device = await connect(node, "42", ack_mode="manual")
    ids = [await notify(http, node, "42", {"n": n}) for n in range(2)]
    fetching = asyncio.create_task(device.fetch())
    _, future = await device.next_batch()
    if isinstance(ack, dict):
        ack = {"received": [ids[0] if i == "FIRST" else i for i in ack["received"]]}
    future.set_result(ack)
    answer = await fetching
    expected = {"all": 2, "none": 0, "first": 1}[marked]
    assert answer == {"ok": True, "delivered": expected, "has_more": False}
    assert await unseen(node, "42") == 2 - expected


@pytest.mark.parametrize(
    "ack",
    ["yes", 1, ["id"], {"received": "id"}, {"received": [1]}, {"other": []}, ("a", "b")],
    ids=["string", "number", "list", "received-not-list", "received-ints", "unknown", "two-args"],
)
async def test_malformed_ack_marks_nothing_and_answers_invalid_request(
    node, connect, http, ack
) -> None:
    device = await connect(node, "42", ack_mode="manual")
    await notify(http, node, "42")
    fetching = asyncio.create_task(device.fetch())
    _, future = await device.next_batch()
    future.set_result(ack)
    assert error_code(await fetching) == "invalid_request"
    assert await unseen(node, "42") == 1


async def test_second_fetch_while_one_is_in_progress_is_rate_limited(node, connect, http):
    device = await connect(node, "42", ack_mode="manual")
    await notify(http, node, "42")
    first = asyncio.create_task(device.fetch())
    _, future = await device.next_batch()
    assert error_code(await device.fetch()) == "rate_limited"
    future.set_result(None)
    assert (await first)["delivered"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "5"},
        {"limit": True},
        {"limit": 2.5},
        {"limit": 10**40},
        {"limit": 5, "extra": 1},
        ["limit", 5],
        "limit",
        ({"limit": 1}, {"limit": 2}),
    ],
)
async def test_bad_fetch_payload_is_refused_and_connection_stays_up(
    node, connect, http, payload
) -> None:
    device = await connect(node, "42")
    await notify(http, node, "42")
    answer = await device.fetch(payload)
    assert error_code(answer) == "invalid_request"
    if isinstance(payload, dict):
        bad = "extra" if "extra" in payload else "limit"
        assert bad in answer["error"]["message"]
    assert await unseen(node, "42") == 1
    assert await device.fetch() == {"ok": True, "delivered": 1, "has_more": False}


async def test_unknown_event_gets_invalid_request(node, connect) -> None:
    device = await connect(node, "42")
    answer = await device.emit_call("mark-everything-seen", {"user_id": "7"})
    assert error_code(answer) == "invalid_request"
    assert device.sio.connected


async def test_a_user_never_receives_or_marks_another_users_notifications(
    node, connect, http
) -> None:
    alice = await connect(node, "alice", ack_mode="manual")
    bob = await connect(node, "bob")
    bobs = await notify(http, node, "bob")
    alices = await notify(http, node, "alice")
    fetching = asyncio.create_task(alice.fetch())
    batch, future = await alice.next_batch()
    assert [n["id"] for n in batch["notifications"]] == [alices]
    future.set_result({"received": [alices, bobs]})
    assert (await fetching)["delivered"] == 1
    assert await unseen(node, "bob") == 1
    await bob.wait_count(1)
    assert bobs not in alice.delivered_ids


async def test_store_failure_at_ack_marks_nothing_and_answers_unavailable(
    start_node, connect, http, sqlite_url
) -> None:
    node = await start_node(store_url=sqlite_url, store_timeout=0.3)
    device = await connect(node, "42")
    await notify(http, node, "42")
    with sqlite_write_locked(sqlite_url):
        assert error_code(await device.fetch()) == "unavailable"
    assert device.sio.connected
    assert await unseen(node, "42") == 1
    assert await device.fetch() == {"ok": True, "delivered": 1, "has_more": False}


async def test_a_record_the_application_inserted_with_a_long_string_id_is_acknowledged_by_id(
    node, connect, sqlite_url
) -> None:
    """PROTOCOL: an application's own records (string ids of its choosing) are delivered
    and acknowledged like any other, naming them in ``received`` included."""
    import sqlite3

    long_id = "order-" + "7" * 200
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "INSERT INTO notifications VALUES (?, '42', '{\"text\": \"shipped\"}', ?, NULL)",
            (long_id, "2026-01-01T00:00:00.000000+00:00"),
        )
    await node.node.notifier.announce("42", long_id)
    device = await connect(node, "42", ack_mode="manual")
    await device.wait_count(1)
    fetching = asyncio.create_task(device.fetch())
    batch, future = await device.next_batch()
    assert [n["id"] for n in batch["notifications"]] == [long_id]
    future.set_result({"received": [long_id]})
    assert await fetching == {"ok": True, "delivered": 1, "has_more": False}
    assert await unseen(node, "42") == 0
