"""A write that waited for another process's lock never commits after its caller was
told the store is unavailable."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from pns_sio.errors import StoreUnavailable
from pns_sio.store.guarded import GuardedStore
from pns_sio.store.sqlite import SQLiteStore

TIMEOUT = 2.0  # over the guard margin (1 s), as on a node: a lock wait can outlast the guard


async def test_a_write_answered_unavailable_is_never_committed_later(tmp_path: Path) -> None:
    path = tmp_path / "pns.db"
    inner = await SQLiteStore.open(f"sqlite:///{path}", timeout=TIMEOUT)
    store = GuardedStore(inner, timeout=TIMEOUT + 1.0)
    held, release, released = threading.Event(), threading.Event(), threading.Event()

    def other_process() -> None:
        # Another program holds the write lock, and lets go only after both callers
        # below have been answered.
        with sqlite3.connect(path, isolation_level=None) as conn:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(30)
            conn.execute("COMMIT")
        released.set()

    holder = threading.Thread(target=other_process)
    holder.start()
    try:
        await asyncio.to_thread(held.wait, 10)
        # The first write waits for the lock the whole busy timeout; the second queues
        # behind it, starts just before its own deadline, then waits for the lock too.
        first = asyncio.create_task(store.create("42", {"n": 1}))
        # Ordering, not a wait for a result: the writer thread must have taken the first
        # job before the second arrives. Were it slower than this, both would share one
        # transaction and fail together: the test would still pass, but prove less.
        await asyncio.sleep(0.2)
        second = asyncio.create_task(store.create("42", {"n": 2}))
        for call in (first, second):
            with pytest.raises(StoreUnavailable):
                await call
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 30)
    assert released.is_set()
    # The writer thread is free again: whatever it was going to do, it has done.
    await store.create("7", {"probe": True})
    assert (await store.unseen("42")).count == 0
    await store.close()
