"""SQLite's writer commits the writes waiting together; each still succeeds or fails alone.
And what is SQLite's own: the windowed retention purge.

The thread's own tests build it without the loop's connection (``inline=False``): every
call then takes the thread, as the calls that must wait for a lock do."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pns_sio.errors import StoreUnavailable
from pns_sio.store import sqlite as sqlite_store
from pns_sio.store.sqlite import SQLiteStore
from pns_sio.store.sqlite_worker import SQLiteThread


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteThread]:
    thread = SQLiteThread(str(tmp_path / "t.db"), 2.0, "test-w", writer=True, inline=False)
    await thread.run(lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY)"), alone=True)
    yield thread
    await asyncio.to_thread(thread.close)


def _insert(key: str) -> Callable[[sqlite3.Connection], str]:
    def job(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (k) VALUES (?)", (key,))
        return key

    return job


def _keys(path: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT k FROM t ORDER BY k")]


async def test_a_failing_write_undoes_only_itself(db: SQLiteThread, tmp_path: Path) -> None:
    await db.run(_insert("taken"))
    # Queued together, these share one transaction; the duplicate fails alone.
    results = await asyncio.gather(
        db.run(_insert("a")),
        db.run(_insert("taken")),
        db.run(_insert("b")),
        return_exceptions=True,
    )
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], StoreUnavailable)
    assert "UNIQUE" in str(results[1])
    assert _keys(str(tmp_path / "t.db")) == ["a", "b", "taken"]


async def test_a_job_that_raises_rolls_back_its_own_statements(
    db: SQLiteThread, tmp_path: Path
) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k) VALUES ('half')")
        raise ValueError("changed my mind")

    results = await asyncio.gather(
        db.run(_insert("x")), db.run(half_then_fail), db.run(_insert("y")), return_exceptions=True
    )
    assert results[0] == "x" and results[2] == "y"
    assert isinstance(results[1], ValueError)
    assert _keys(str(tmp_path / "t.db")) == ["x", "y"]


async def test_a_lone_job_that_raises_leaves_nothing(db: SQLiteThread, tmp_path: Path) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k) VALUES ('half')")
        raise ValueError("changed my mind")

    with pytest.raises(ValueError):
        await db.run(half_then_fail)
    assert await db.run(_insert("next")) == "next"
    assert _keys(str(tmp_path / "t.db")) == ["next"]


async def test_many_concurrent_writes_all_land(db: SQLiteThread, tmp_path: Path) -> None:
    keys = [f"k{i:04d}" for i in range(500)]
    assert await asyncio.gather(*(db.run(_insert(k)) for k in keys)) == keys
    assert _keys(str(tmp_path / "t.db")) == keys


async def test_a_cancelled_caller_s_write_does_not_run(db: SQLiteThread, tmp_path: Path) -> None:
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wait_for_gate(conn: sqlite3.Connection) -> None:
        # Holds the thread until the test has cancelled the queued write.
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(timeout=5)

    blocker = asyncio.ensure_future(db.run(wait_for_gate))
    queued = asyncio.ensure_future(db.run(_insert("late")))
    await asyncio.sleep(0)  # both are queued on the thread
    queued.cancel()
    gate.set()
    await blocker
    assert await db.run(_insert("after")) == "after"
    assert _keys(str(tmp_path / "t.db")) == ["after"]


async def test_two_stores_on_one_file_keep_every_count(tmp_path: Path) -> None:
    # Two nodes of the embedded mode share a file: batches from both interleave.
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = await SQLiteStore.open(url), await SQLiteStore.open(url)
    try:
        users = [f"u{i}" for i in range(20)]
        await asyncio.gather(*(s.create(u, {"n": 1}) for u in users for s in (a, b)))
        for user in users:
            assert (await a.unseen(user)).count == 2
            assert (await b.unseen(user)).rev == 2
        ids = {u: [n.id for n in await a.list_unseen(u, 10)] for u in users}
        marked = await asyncio.gather(
            *(s.mark_seen(u, ids[u]) for u in users for s in (a, b)), return_exceptions=False
        )
        # Every notification is marked exactly once across both nodes.
        assert sum(m.changed for m in marked) == 2 * len(users)
        for user in users:
            assert (await b.unseen(user)).count == 0
    finally:
        await a.close()
        await b.close()


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = await SQLiteStore.open(f"sqlite:///{tmp_path / 'c.db'}")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.create("u", {"n": 1})


async def test_the_purge_walks_the_table_in_windows_and_keeps_what_it_must(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows of 3 rowids over 20 records: records on every window edge are judged.
    monkeypatch.setattr(sqlite_store, "PURGE_WINDOW", 3)
    store = await SQLiteStore.open(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        created = [await store.create(f"u{i % 2}", {"n": i}) for i in range(20)]
        seen = [c.id for i, c in enumerate(created) if i % 3 != 1]
        for user in ("u0", "u1"):
            await store.mark_seen(user, seen)
        assert await store.purge_seen(datetime.now(UTC) + timedelta(seconds=1)) == len(seen)
        kept = [c.id for c in created if await store.get(c.id) is not None]
        assert kept == [c.id for i, c in enumerate(created) if i % 3 == 1]
        assert (await store.unseen("u0")).count + (await store.unseen("u1")).count == len(kept)
        # Nothing seen is old enough: nothing goes.
        await store.mark_seen("u1", kept)
        assert await store.purge_seen(datetime.now(UTC) - timedelta(days=1)) == 0
    finally:
        await store.close()
