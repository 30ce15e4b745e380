"""The store guard (pns_sio/store/guarded.py) on a real SQLite store: a call that finishes
at once answers at once; one that waits is bounded from its first wait, and cancelled
with its caller; nothing the caller was told failed is written later."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pns_sio.errors import StoreUnavailable
from pns_sio.store.guarded import GuardedStore
from pns_sio.store.sqlite import SQLiteStore


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(f"sqlite:///{tmp_path / 'g.db'}", timeout=5.0)
    yield store
    await store.close()


def hold_write_lock(store: SQLiteStore) -> sqlite3.Connection:
    """Another process's write lock (here: another connection's)."""
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_a_call_that_need_not_wait_is_answered_and_reported(inner: SQLiteStore) -> None:
    reports: list[tuple[str, bool]] = []
    guard = GuardedStore(inner, timeout=1.0, report=lambda op, ok, s: reports.append((op, ok)))
    created = await guard.create("42", {"n": 1})
    assert [n.id for n in await guard.list_unseen("42", 10)] == [created.id]
    assert reports == [("create", True), ("list_unseen", True)]


async def test_a_call_that_waits_past_the_limit_is_unavailable_and_writes_nothing(
    inner: SQLiteStore,
) -> None:
    reports: list[tuple[str, bool]] = []
    guard = GuardedStore(inner, timeout=0.3, report=lambda op, ok, s: reports.append((op, ok)))
    holder = hold_write_lock(inner)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await guard.create("42", {"n": 1})
        # The guard's limit, not the store's 5 s busy wait, answered.
        assert time.monotonic() - started < 2.0
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert reports == [("create", False)]
    assert (await guard.unseen("42")).count == 0


async def test_a_call_that_waits_and_finishes_in_time_gets_its_answer(inner: SQLiteStore) -> None:
    guard = GuardedStore(inner, timeout=5.0)
    holder = hold_write_lock(inner)
    write = asyncio.ensure_future(guard.create("42", {"n": 1}))
    await asyncio.sleep(0)  # the write waits for the lock on the store's thread
    assert not write.done()
    holder.execute("COMMIT")
    holder.close()
    created = await write
    assert [n.id for n in await guard.list_unseen("42", 10)] == [created.id]


async def test_cancelling_the_caller_cancels_the_waiting_call(inner: SQLiteStore) -> None:
    guard = GuardedStore(inner, timeout=5.0)
    holder = hold_write_lock(inner)
    try:
        write = asyncio.ensure_future(guard.create("42", {"n": 1}))
        await asyncio.sleep(0)
        write.cancel()
        # The caller's own cancellation, not the guard's timeout: it stays a cancellation.
        with pytest.raises(asyncio.CancelledError):
            await write
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert (await guard.unseen("42")).count == 0
