"""While writes come several to a turn of the loop they share one SQLite transaction
(group commit, pns_sio/store/sqlite_inline.py): each caller is answered only once it
committed, one write's failure undoes it alone, and a caller that gave up leaves nothing
written. A write alone in its turn commits at once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pns_sio.errors import StoreUnavailable
from pns_sio.store.sqlite import SQLiteStore
from pns_sio.store.sqlite_inline import GROUP_MAX

T = TypeVar("T")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 's.db'}", timeout=5.0)
    yield opened
    await opened.close()


def refuse_revs_for(path: str, user_id: str) -> None:
    """Make SQLite itself fail a create for ``user_id`` halfway, as a full disk or a
    constraint would: its record is inserted, then raising the user's rev fails."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON pns_users"
        f" WHEN NEW.user_id = '{user_id}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    conn.close()


WARM_UP = "warm-up"


async def writes_come_together(store: SQLiteStore) -> None:
    """Two writes in one turn, each committed alone: the next turns' writes are grouped."""
    await asyncio.gather(*(store.create(WARM_UP, {"n": n}) for n in range(2)))


def committed_rows(path: str) -> dict[str, int]:
    """Notifications per user as another process sees the file: committed ones only
    (the warm-up's left out)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT user_id, count(*) FROM notifications GROUP BY user_id")
        return {user: n for user, n in rows.fetchall() if user != WARM_UP}
    finally:
        conn.close()


def finishes_without_waiting(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call``; fail if it waits for anything (a loop turn, a thread)."""
    try:
        call.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    call.close()
    raise AssertionError("the call waited")


async def test_a_write_alone_in_its_turn_commits_at_once(store: SQLiteStore) -> None:
    created = finishes_without_waiting(store.create("7", {"n": 1}))
    assert created.count == 1
    assert committed_rows(store.path) == {"7": 1}


async def test_writes_are_grouped_only_while_they_come_together(store: SQLiteStore) -> None:
    await writes_come_together(store)
    # Grouped now: a write waits for the end of its turn, even alone in it ...
    lone = asyncio.ensure_future(store.create("7", {"n": 1}))
    await asyncio.sleep(0)  # it ran, and waits for the commit
    assert not lone.done()
    assert committed_rows(store.path) == {}
    assert (await lone).count == 1
    # ... and having been alone, the next one commits at once again.
    assert finishes_without_waiting(store.create("7", {"n": 2})).count == 2


async def test_writes_of_one_turn_all_land_and_each_user_sees_its_own_counts(
    store: SQLiteStore,
) -> None:
    await writes_come_together(store)
    # More than one transaction's worth at once, spread over a few users.
    writes = 2 * GROUP_MAX + 5
    created = await asyncio.gather(*(store.create(f"u{i % 3}", {"i": i}) for i in range(writes)))
    assert len({c.id for c in created}) == writes
    for user in range(3):
        mine = [c for i, c in enumerate(created) if i % 3 == user]
        # In the order they were made: counts and revs rise one by one.
        assert [c.count for c in mine] == list(range(1, len(mine) + 1))
        assert [c.rev for c in mine] == list(range(1, len(mine) + 1))
        assert (await store.unseen(f"u{user}")).count == len(mine)
    assert sum(committed_rows(store.path).values()) == writes


async def test_a_write_is_answered_only_once_it_is_committed(store: SQLiteStore) -> None:
    await writes_come_together(store)

    async def create_then_look() -> dict[str, int]:
        await store.create("7", {"n": 1})
        # Right away, before anything else runs: what another process would read now.
        return committed_rows(store.path)

    assert await create_then_look() == {"7": 1}


@pytest.mark.parametrize("failing_first", [True, False], ids=["fails-first", "fails-later"])
async def test_a_failing_write_undoes_itself_alone(store: SQLiteStore, failing_first: bool) -> None:
    await store.create("a", {"n": 0})
    await writes_come_together(store)
    refuse_revs_for(store.path, "bad")
    order = ["bad", "a", "b"] if failing_first else ["a", "bad", "b"]
    results = await asyncio.gather(
        *(store.create(user, {"n": 1}) for user in order), return_exceptions=True
    )
    by_user = dict(zip(order, results, strict=True))
    assert isinstance(by_user["bad"], StoreUnavailable)
    assert "refused" in str(by_user["bad"])
    assert not isinstance(by_user["a"], BaseException) and by_user["a"].count == 2
    assert not isinstance(by_user["b"], BaseException) and by_user["b"].count == 1
    assert committed_rows(store.path) == {"a": 2, "b": 1}
    bad = await store.unseen("bad")
    assert (bad.count, bad.rev) == (0, 0)  # its rev was not raised either


async def test_a_write_whose_caller_gave_up_before_the_commit_is_not_stored(
    store: SQLiteStore,
) -> None:
    # As when the store guard's timeout cancels a call: that caller may be told its write
    # failed, so it must not be stored; the writes sharing its transaction still are.
    await writes_come_together(store)
    given_up = asyncio.ensure_future(store.create("quitter", {"n": 1}))
    kept = asyncio.ensure_future(store.create("stayer", {"n": 1}))
    await asyncio.sleep(0)  # both ran and wait for their commit, at the end of this turn
    assert not given_up.done() and not kept.done()
    given_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await given_up
    assert (await kept).count == 1
    assert committed_rows(store.path) == {"stayer": 1}
    assert (await store.unseen("quitter")).count == 0
    assert (await store.create("quitter", {"n": 2})).count == 1


async def test_a_write_made_just_before_the_store_closes_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    opened = await SQLiteStore.open(f"sqlite:///{path}", timeout=5.0)
    await writes_come_together(opened)
    write = asyncio.ensure_future(opened.create("9", {"n": 1}))
    await asyncio.sleep(0)  # it ran and waits for the end of the turn
    assert not write.done()
    async with asyncio.timeout(10):  # a hang fails here, not at CI's limit
        await opened.close()
        created = await write
    assert created.count == 1
    reopened = await SQLiteStore.open(f"sqlite:///{path}", timeout=5.0)
    try:
        assert [n.id for n in await reopened.list_unseen("9", 10)] == [created.id]
    finally:
        await reopened.close()
