"""SQLite calls run on the event loop when they need not wait (pns_sio/store/sqlite_inline.py),
and on the store's thread when they must: a lock held elsewhere never holds up the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pns_sio.store.sqlite import SQLiteStore
from pns_sio.store.sqlite_inline import CHECKPOINT_EVERY


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 's.db'}", timeout=5.0)
    yield opened
    await opened.close()


async def test_a_write_waits_for_a_lock_held_elsewhere_without_holding_up_the_loop(
    store: SQLiteStore,
) -> None:
    # Another process (here: another connection) holds SQLite's write lock.
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        write = asyncio.ensure_future(store.create("42", {"n": 1}))
        await asyncio.sleep(0)  # the write started, and this test runs on: the loop is free
        assert not write.done()
        # Reads do not wait for writers (WAL): answered while the lock is held.
        assert (await store.unseen("42")).count == 0
        assert not write.done()
    finally:
        holder.execute("COMMIT")
        holder.close()
    created = await write
    assert (await store.unseen("42")).count == 1
    assert [n.id for n in await store.list_unseen("42", 10)] == [created.id]


async def test_writes_on_the_loop_keep_the_wal_from_growing(store: SQLiteStore) -> None:
    # The loop's connection never checkpoints itself (a checkpoint syncs the file); it
    # has the thread do it every CHECKPOINT_EVERY commits, so the WAL is reused.
    wal = Path(store.path + "-wal")
    commits = 20 * CHECKPOINT_EVERY
    for i in range(commits):
        await store.create(f"u{i % 50}", {"n": i})
    await store.ping()  # after the last checkpoint the thread was asked for
    size = (await asyncio.to_thread(wal.stat)).st_size
    # Each commit appends a few 4 KiB pages; unchecked, the WAL would hold them all.
    assert size < commits * 4096 / 4, size
    assert (await store.unseen("u0")).count == commits // 50
