"""MongoDB keeps each user's unseen count beside the rev, in the write's own transaction,
so a create or a mark costs the same at any backlog; a server without transactions
(and any writer that does not keep the count) makes PNS count again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from pns_sio.store.mongo import USERS, MongoStore

from .support.databases import fresh_mongo_database


@pytest.fixture
async def opened(
    request, mongo_url: str
) -> AsyncIterator[tuple[MongoStore, AsyncMongoClient, str]]:
    url = fresh_mongo_database(mongo_url, request.node.name)
    store = await MongoStore.open(url, timeout=5.0)
    client: AsyncMongoClient = AsyncMongoClient(url)
    yield store, client, url
    await client.close()
    await store.close()


async def kept(client: AsyncMongoClient, user: str) -> dict:
    doc = await client.get_default_database()[USERS].find_one({"_id": user})
    return {"rev": doc["rev"], "unseen": doc.get("unseen"), "unseen_rev": doc.get("unseen_rev")}


async def test_creates_and_marks_keep_the_count_with_their_rev(opened) -> None:
    store, client, _ = opened
    created = await store.create_many([("u", {"n": i}) for i in range(5)])
    assert [c.count for c in created] == [5] * 5  # read in the write's transaction
    assert await kept(client, "u") == {"rev": 1, "unseen": 5, "unseen_rev": 1}
    marked = await store.mark_seen("u", [created[0].id, created[1].id])
    assert (marked.changed, marked.rev, marked.count) == (2, 2, 3)
    assert await kept(client, "u") == {"rev": 2, "unseen": 3, "unseen_rev": 2}
    # The count is read from the kept value, not counted: costs the same at any backlog.
    await client.get_default_database()[USERS].update_one({"_id": "u"}, {"$set": {"unseen": 99}})
    assert (await store.unseen("u")).count == 99


async def test_an_announced_write_and_a_writer_without_transactions_are_counted(opened) -> None:
    store, client, url = opened
    await store.create("u", {})
    notifications = client.get_default_database()["notifications"]
    await notifications.insert_one({"user_id": "u", "notification_data": {}, "seen_date": None})
    assert (await store.unseen("u")).count == 1  # not announced yet: PNS's own count
    assert await store.bump_rev("u") == 2  # the application announces its write
    assert (await store.unseen("u")).count == 2
    # A node on a server without transactions raises only the rev: the kept count is
    # behind it, so readers count again.
    standalone = await MongoStore.open(url, timeout=5.0, transactions=False)
    try:
        await standalone.create("u", {})
    finally:
        await standalone.close()
    assert (await kept(client, "u"))["unseen_rev"] == 2
    assert (await store.unseen("u")).count == 3


async def test_a_kept_count_that_would_go_negative_is_counted_again(opened) -> None:
    store, client, _ = opened
    await store.create("u", {})  # kept count: 1
    notifications = client.get_default_database()["notifications"]
    for n in range(3):  # written behind PNS's back, never announced
        await notifications.insert_one(
            {"_id": f"app-{n}", "user_id": "u", "notification_data": {}, "seen_date": None}
        )
    marked = await store.mark_seen("u", ["app-0", "app-1", "app-2"])
    assert (marked.changed, marked.count) == (3, 1)
    assert (await store.unseen("u")).count == 1
