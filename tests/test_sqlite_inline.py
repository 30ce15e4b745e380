"""SQLite calls run on the event loop when they need not wait (pns_sio/store/sqlite_inline.py),
and on the store's thread when they must: a lock held elsewhere never holds up the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pns_sio.errors import StoreUnavailable
from pns_sio.store import sqlite_inline
from pns_sio.store.sqlite import SQLiteStore


def hold_write_lock(path: str) -> sqlite3.Connection:
    """Another process's write lock (here: another connection's), held until released."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def release(holder: sqlite3.Connection) -> None:
    holder.execute("COMMIT")
    holder.close()


async def let_waiting_calls_start() -> None:
    """A few passes of the loop: every call just made has run up to where it waits."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 's.db'}", timeout=5.0)
    yield opened
    await opened.close()


async def test_a_write_waits_for_a_lock_held_elsewhere_without_holding_up_the_loop(
    store: SQLiteStore,
) -> None:
    holder = hold_write_lock(store.path)
    try:
        write = asyncio.ensure_future(store.create("42", {"n": 1}))
        await asyncio.sleep(0)  # the write started, and this test runs on: the loop is free
        assert not write.done()
        # Reads do not wait for writers (WAL): answered while the lock is held.
        assert (await store.unseen("42")).count == 0
        assert not write.done()
    finally:
        release(holder)
    created = await write
    assert (await store.unseen("42")).count == 1
    assert [n.id for n in await store.list_unseen("42", 10)] == [created.id]


# The WAL tests checkpoint every 100 writes, a tenth of the default, to run ten times
# fewer writes; what they check holds at any interval.
CHECKPOINT_EVERY = 100


@pytest.fixture
def checkpoint_often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", CHECKPOINT_EVERY)


@pytest.mark.usefixtures("checkpoint_often")
async def test_writes_on_the_loop_keep_the_wal_from_growing(store: SQLiteStore) -> None:
    # The loop's connection never checkpoints itself (a checkpoint syncs the file); it
    # has the thread do it every CHECKPOINT_EVERY writes, so the WAL is reused.
    wal = Path(store.path + "-wal")
    commits = 20 * CHECKPOINT_EVERY
    for i in range(commits):
        await store.create(f"u{i % 50}", {"n": i})
    await store.ping()  # after the last checkpoint the thread was asked for
    size = (await asyncio.to_thread(wal.stat)).st_size
    # Each commit appends a few 4 KiB pages; unchecked, the WAL would hold them all.
    assert size < commits * 4096 / 4, size
    assert (await store.unseen("u0")).count == commits // 50


@pytest.mark.usefixtures("checkpoint_often")
async def test_concurrent_writes_keep_the_wal_from_growing_and_all_land(
    store: SQLiteStore,
) -> None:
    # Many writers at once, as a busy node's fetches and creates: a checkpoint handed to
    # the thread holds the writes that come meanwhile on the loop, so the WAL still
    # starts over, and every write lands once.
    wal = Path(store.path + "-wal")
    # Writes coming together are grouped from the next turn on (test_sqlite_group_commit).
    await asyncio.gather(store.create("warm-up", {}), store.create("warm-up", {}))
    rounds, at_once = 30, 4 * CHECKPOINT_EVERY // 2
    for r in range(rounds):
        await asyncio.gather(
            *(store.create(f"u{i % 40}", {"r": r, "i": i}) for i in range(at_once))
        )
    await store.ping()
    size = (await asyncio.to_thread(wal.stat)).st_size
    commits = rounds * at_once
    # Bounded by what one checkpoint's worth of writes and one transaction append (138
    # pages here), not by the 6,000 writes made; a write that began during a checkpoint
    # would keep the WAL from starting over (370 pages and more).
    assert size < 2 * CHECKPOINT_EVERY * 4096, size
    assert sum([(await store.unseen(f"u{u}")).count for u in range(40)]) == commits


async def test_writes_waiting_behind_the_thread_all_land_once_the_lock_is_free(
    store: SQLiteStore,
) -> None:
    holder = hold_write_lock(store.path)
    try:
        # The first gives way to the thread, which waits for the lock; the others wait
        # on the loop for the thread, and the loop stays free.
        writes = [asyncio.ensure_future(store.create("7", {"n": n})) for n in range(50)]
        await let_waiting_calls_start()
        assert not any(w.done() for w in writes)
        assert (await store.unseen("7")).count == 0
    finally:
        release(holder)
    created = await asyncio.gather(*writes)
    assert len({c.id for c in created}) == 50
    assert (await store.unseen("7")).count == 50
    assert sorted(c.count for c in created) == list(range(1, 51))


async def test_writes_waiting_behind_the_thread_when_the_store_closes_do_not_hang(
    tmp_path: Path,
) -> None:
    opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 's.db'}", timeout=5.0)
    holder = hold_write_lock(opened.path)
    first = asyncio.ensure_future(opened.create("9", {"n": 0}))  # on the thread, waiting
    await let_waiting_calls_start()
    waiting = asyncio.ensure_future(opened.create("9", {"n": 1}))  # on the loop, waiting
    await let_waiting_calls_start()
    assert not waiting.done()
    closing = asyncio.ensure_future(opened.close())
    release(holder)
    async with asyncio.timeout(10):  # a hang fails here, not at CI's limit
        await closing
        assert (await first).count == 1  # queued before the close: it still ran
        # Either it ran before the store closed, or it is told the store closed.
        try:
            landed = await waiting
        except StoreUnavailable:
            landed = None
    if landed is not None:
        assert landed.count == 2
    with pytest.raises(StoreUnavailable):
        await opened.create("9", {"n": 2})
