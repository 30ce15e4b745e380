"""One contract, every store: what a NotificationStore must do (SQLite and MongoDB)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pns_sio.store import NotificationStore


async def test_a_new_store_counts_nothing_at_rev_zero(store: NotificationStore) -> None:
    unseen = await store.unseen("42")
    assert (unseen.count, unseen.rev) == (0, 0)
    assert await store.list_unseen("42", 10) == []


async def test_create_stores_an_unseen_record_and_raises_rev(store: NotificationStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = await store.create("42", {"text": "hi", "nested": {"n": [1, 2]}})
    assert created.rev == 1
    assert created.created_at.tzinfo is not None
    assert before <= created.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    stored = await store.get(created.id)
    assert stored is not None
    assert stored.user_id == "42"
    assert stored.data == {"text": "hi", "nested": {"n": [1, 2]}}
    assert stored.seen_at is None
    unseen = await store.unseen("42")
    assert (unseen.count, unseen.rev) == (1, 1)


async def test_users_are_counted_apart(store: NotificationStore) -> None:
    await store.create("alice", {"n": 1})
    await store.create("alice", {"n": 2})
    await store.create("bob", {"n": 3})
    assert (await store.unseen("alice")).count == 2
    assert (await store.unseen("bob")).count == 1
    assert [n.data for n in await store.list_unseen("bob", 10)] == [{"n": 3}]


async def test_list_unseen_is_oldest_first_and_limited(store: NotificationStore) -> None:
    ids = [(await store.create("42", {"n": i})).id for i in range(5)]
    first = await store.list_unseen("42", 3)
    assert [n.id for n in first] == ids[:3]
    assert [n.data["n"] for n in first] == [0, 1, 2]
    assert [n.id for n in await store.list_unseen("42", 100)] == ids


async def test_records_created_together_page_in_order_each_once(store: NotificationStore) -> None:
    # A batch shares one timestamp; the written order settles the ties, so paging neither
    # skips nor repeats, and the batch comes out in the order it went in.
    await store.create_many([("42", {"n": i}) for i in range(7)])
    await store.create("42", {"n": 7})
    seen: list[int] = []
    for _ in range(10):
        page = await store.list_unseen("42", 3)
        if not page:
            break
        seen += [n.data["n"] for n in page]
        await store.mark_seen("42", [n.id for n in page])
    assert seen == list(range(8))


async def test_mark_seen_marks_only_unseen_records_of_that_user(store: NotificationStore) -> None:
    mine = [(await store.create("42", {"n": i})).id for i in range(3)]
    theirs = (await store.create("7", {"n": 9})).id
    marked = await store.mark_seen("42", [mine[0], mine[1], theirs, "not-an-id", "0" * 24])
    assert marked.changed == 2
    assert marked.rev == 4  # three creates, then one mark
    assert (await store.unseen("42")).count == 1
    assert (await store.unseen("7")).count == 1
    other = await store.get(theirs)
    assert other is not None and other.seen_at is None
    seen = await store.get(mine[0])
    assert seen is not None and seen.seen_at is not None and seen.seen_at.tzinfo is not None
    assert [n.id for n in await store.list_unseen("42", 10)] == [mine[2]]


async def test_marking_seen_twice_counts_once_and_keeps_rev(store: NotificationStore) -> None:
    nid = (await store.create("42", {})).id
    first = await store.mark_seen("42", [nid, nid])
    second = await store.mark_seen("42", [nid])
    assert first.changed == 1
    assert second.changed == 0
    assert second.rev == first.rev
    assert (await store.mark_seen("42", [])).changed == 0


async def test_concurrent_mark_seen_counts_each_notification_once(
    store: NotificationStore,
) -> None:
    ids = [(await store.create("42", {"n": i})).id for i in range(20)]
    results = await asyncio.gather(*(store.mark_seen("42", ids) for _ in range(8)))
    assert sum(r.changed for r in results) == 20
    assert (await store.unseen("42")).count == 0


async def test_rev_only_rises(store: NotificationStore) -> None:
    revs = [await store.bump_rev("42") for _ in range(3)]
    assert revs == [1, 2, 3]
    created = await store.create("42", {})
    assert created.rev == 4
    assert (await store.mark_seen("42", [created.id])).rev == 5
    assert (await store.unseen("42")).rev == 5
    assert (await store.unseen("someone-else")).rev == 0


async def test_concurrent_rev_bumps_never_repeat(store: NotificationStore) -> None:
    revs = await asyncio.gather(*(store.bump_rev("new-user") for _ in range(10)))
    assert sorted(revs) == list(range(1, 11))


async def test_unknown_or_malformed_id_gets_none(store: NotificationStore) -> None:
    assert await store.get("0" * 24) is None
    assert await store.get("nope") is None


async def test_ping_answers(store: NotificationStore) -> None:
    await store.ping()


async def test_create_many_stores_all_and_raises_each_users_rev_once(
    store: NotificationStore,
) -> None:
    created = await store.create_many([("a", {"n": 1}), ("b", {"n": 2}), ("a", {"n": 3})])
    assert len({c.id for c in created}) == 3
    assert [c.rev for c in created] == [1, 1, 1]
    assert (await store.unseen("a")).count == 2
    assert [n.data for n in await store.list_unseen("a", 10)] == [{"n": 1}, {"n": 3}]
    assert await store.create_many([]) == []


async def test_create_many_with_chosen_ids_writes_each_record_once(
    store: NotificationStore,
) -> None:
    ids = ["6650a1b2c3d4e5f6a7b8c9d0", "6650a1b2c3d4e5f6a7b8c9d1"]
    items = [("a", {"n": 1}), ("a", {"n": 2})]
    first = await store.create_many(items[:1], ids=ids[:1])  # a try that got half way
    again = await store.create_many(items, ids=ids)
    assert [c.id for c in again] == ids
    assert again[0].created_at == first[0].created_at  # the stored record, as it was
    assert (await store.unseen("a")).count == 2
    assert [n.data for n in await store.list_unseen("a", 10)] == [{"n": 1}, {"n": 2}]


async def test_purge_seen_deletes_only_seen_records_older_than_the_cut(
    store: NotificationStore,
) -> None:
    old_seen, unseen_id = [(await store.create("42", {"n": i})).id for i in range(2)]
    await store.mark_seen("42", [old_seen])
    assert await store.purge_seen(datetime.now(UTC) - timedelta(days=1)) == 0
    assert await store.purge_seen(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert await store.get(old_seen) is None
    assert await store.get(unseen_id) is not None
    assert (await store.unseen("42")).count == 1


async def test_idempotency_key_claims(store: NotificationStore) -> None:
    assert (await store.claim_key("k1", "body-a")).state == "new"
    # Claimed, not answered yet: a concurrent retry must wait.
    assert (await store.claim_key("k1", "body-a")).state == "pending"
    assert (await store.claim_key("k1", "body-b")).state == "mismatch"
    await store.complete_key("k1", {"status": 201, "body": {"id": "x"}})
    done = await store.claim_key("k1", "body-a")
    assert (done.state, done.response) == ("done", {"status": 201, "body": {"id": "x"}})
    assert (await store.claim_key("k1", "body-b")).state == "mismatch"
    # A failed request releases its claim; a completed one cannot be released.
    assert (await store.claim_key("k2", "body")).state == "new"
    await store.release_key("k2")
    assert (await store.claim_key("k2", "body")).state == "new"
    await store.release_key("k1")
    assert (await store.claim_key("k1", "body-a")).state == "done"


async def test_concurrent_claims_of_one_key_let_exactly_one_in(store: NotificationStore) -> None:
    claims = await asyncio.gather(*(store.claim_key("same", "body") for _ in range(8)))
    assert sorted(c.state for c in claims) == ["new"] + ["pending"] * 7


async def test_counts_read_with_a_write_are_the_counts_of_its_rev(store: NotificationStore) -> None:
    """A backend that returns the count with a write (to spare a query) must return the true one."""
    first = await store.create("42", {})
    second = await store.create("42", {})
    marked = await store.mark_seen("42", [first.id])
    if second.count is not None:
        assert second.count == 2
    if marked.count is not None:
        assert (marked.count, marked.rev) == (1, 3)
        unseen = await store.unseen("42")
        assert (unseen.count, unseen.rev) == (marked.count, marked.rev)
