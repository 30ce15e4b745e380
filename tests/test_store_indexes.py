"""Each store's listing reads only the page it returns, whatever the backlog.

Records created together share one timestamp (a batch, a publisher's notify_many).
A tie-break the index does not hold makes the database sort every tied record for
each page: SQLite breaks ties by rowid, which ends every index entry, and MongoDB's
index ends with the _id its sort breaks them by.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from pns_sio.store import open_store
from pns_sio.store import sqlite as sqlite_store
from pns_sio.store.mongo import NOTIFICATIONS, UNSEEN_INDEX, MongoStore
from pns_sio.store.sqlite import SQLiteStore
from tests.support.mongo import ENV_URL

from .support.databases import fresh_mongo_database


def _plan(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [
            row[3]
            for row in conn.execute(f"EXPLAIN QUERY PLAN {sqlite_store.LIST_UNSEEN}", ("u", 20))
        ]


async def test_sqlite_lists_a_page_from_the_index_without_sorting(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await SQLiteStore.open(f"sqlite:///{path}")
    try:
        await store.create_many([("u", {"n": i}) for i in range(50)])
        page = await store.list_unseen("u", 20)
        assert [n.data["n"] for n in page] == list(range(20))
    finally:
        await store.close()
    plan = _plan(path)
    assert any("ix_notifications_user_seen_created" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_mongo_has_the_listing_index_with_the_id(mongo_url: str) -> None:
    url = fresh_mongo_database(mongo_url, "listing-index")
    store = await open_store(url, timeout=5.0)
    try:
        await store.create_many([("u", {"n": i}) for i in range(30)])
        assert [n.data["n"] for n in await store.list_unseen("u", 10)] == list(range(10))
    finally:
        await store.close()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        collection = client.get_default_database()[NOTIFICATIONS]
        keys = [info["key"] for info in (await collection.index_information()).values()]
        assert UNSEEN_INDEX in keys, keys
        if os.environ.get(ENV_URL):
            # A real mongod: the page comes from the index, no in-memory SORT stage.
            cursor = (
                collection.find({"user_id": "u", "seen_date": None})
                .sort([("creation_date", 1), ("_id", 1)])
                .limit(10)
            )
            plan = str(await cursor.explain())
            assert "'SORT'" not in plan, plan
    finally:
        await client.close()


@pytest.mark.parametrize(("query", "expected"), [("", "majority"), ("?w=1", 1)])
async def test_mongo_writes_wait_for_a_majority_unless_the_url_says(
    mongo_url: str, query: str, expected: object
) -> None:
    url = fresh_mongo_database(mongo_url, f"write-concern{query}")
    if query and "?" in url:
        query = "&" + query[1:]
    store = await open_store(url + query)
    try:
        assert isinstance(store, MongoStore)
        assert store._notifications.write_concern.document.get("w") == expected
        await store.create("42", {"text": "acknowledged"})  # the server takes it
        assert (await store.unseen("42")).count == 1
    finally:
        await store.close()
