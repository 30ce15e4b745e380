"""One bad record never blocks an inbox: records an application inserted in a shape PNS
cannot deliver are set aside (marked seen, logged once with their id, counted) and the
notifications behind them are delivered."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from bson import Binary, ObjectId
from pymongo import MongoClient

from .support.api import notify
from .support.databases import fresh_mongo_database

OLD = datetime(2026, 1, 1, tzinfo=UTC)


def insert_bad_sqlite_rows(path: str) -> list[str]:
    rows = [
        ("bad-json", "{not json", OLD.isoformat(timespec="microseconds")),
        ("bad-shape", "[1, 2]", (OLD + timedelta(seconds=1)).isoformat(timespec="microseconds")),
        ("bad-date", "{}", "yesterday"),
    ]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO notifications VALUES (?, '42', ?, ?, NULL)",
            rows,
        )
    return [nid for nid, _, _ in rows]


def insert_bad_mongo_docs(url: str) -> list[str]:
    client: MongoClient = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        notifications = client.get_default_database()["notifications"]
        docs = [
            {"_id": ObjectId(), "user_id": "42", "notification_data": "text", "seen_date": None},
            {
                "_id": ObjectId(),
                "user_id": "42",
                "notification_data": {"blob": Binary(b"\x00\x01")},
                "creation_date": OLD,
                "seen_date": None,
            },
        ]
        notifications.insert_many(docs)
        return [str(doc["_id"]) for doc in docs]
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "mongo"])
def backend(request, sqlite_url):
    if request.param == "sqlite":
        return sqlite_url, lambda: insert_bad_sqlite_rows(sqlite_url.removeprefix("sqlite:///"))
    url = fresh_mongo_database(request.getfixturevalue("mongo_url"), request.node.name)
    return url, lambda: insert_bad_mongo_docs(url)


async def test_bad_records_are_set_aside_and_the_rest_delivered(
    backend, start_node, connect, http, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    store_url, insert_bad = backend
    node = await start_node(store_url=store_url)
    await notify(http, node, "42", {"text": "good"})  # so the store is open and ready
    bad_ids = insert_bad()
    await node.node.store.bump_rev("42")  # the application announces its writes
    device = await connect(node, "42")
    await device.wait_count(1 + len(bad_ids))
    answer = await device.fetch()
    assert answer == {"ok": True, "delivered": 1, "has_more": False}
    [batch] = [data for event, data in device.events if event == "new-notifications"]
    assert [n["data"] for n in batch["notifications"]] == [{"text": "good"}]
    # The count is honest: nothing unseen is left, on every device.
    await device.wait_count(0)
    assert node.metric("pns_notifications_undeliverable_total") == len(bad_ids)
    for nid in bad_ids:
        assert sum(nid in r.getMessage() for r in caplog.records) == 1
    # Set aside once: a later fetch meets them no more.
    assert await device.fetch() == {"ok": True, "delivered": 0, "has_more": False}


async def test_a_record_with_a_string_id_is_delivered_and_marked(
    mongo_url, start_node, connect
) -> None:
    url = fresh_mongo_database(mongo_url, "string-id")
    node = await start_node(store_url=url)
    await node.node.store.ping()
    client: MongoClient = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.get_default_database()["notifications"].insert_one(
            {
                "_id": "order-17-shipped",
                "user_id": "42",
                "notification_data": {"text": "app's own id"},
                "creation_date": OLD,
                "seen_date": None,
            }
        )
    finally:
        client.close()
    await node.node.store.bump_rev("42")
    device = await connect(node, "42")
    await device.wait_count(1)
    assert await device.fetch() == {"ok": True, "delivered": 1, "has_more": False}
    assert device.delivered_ids == ["order-17-shipped"]
    await device.wait_count(0)
    seen = await node.node.store.get("order-17-shipped")
    assert seen is not None and seen.seen_at is not None
