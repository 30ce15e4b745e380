"""SQLite keeps each user's unseen count beside the rev, with the rev it is true at.

A create or a mark then costs the same whatever the user's backlog, and any writer
that raises the rev without keeping the count (another program on the file that keeps
only docs/protocol.md's pns_users (user_id, rev)) makes PNS count again; so does an
application's own write it announces.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pns_sio.store.sqlite import SQLiteStore

STAMP = "2026-11-26T00:00:00.000000+00:00"


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    await opened.close()


def _behind_pns(sqlite_store: SQLiteStore, sql: str, *args: object) -> None:
    """A write by another program on the same file (autocommit)."""
    with sqlite3.connect(sqlite_store.path) as conn:
        conn.execute(sql, args)


def _truth(sqlite_store: SQLiteStore, user: str) -> int:
    with sqlite3.connect(sqlite_store.path) as conn:
        query = "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND seen_date IS NULL"
        return int(conn.execute(query, (user,)).fetchone()[0])


async def test_creates_and_marks_keep_the_count(sqlite_store: SQLiteStore) -> None:
    created = await sqlite_store.create_many([("u", {"n": i}) for i in range(5)] + [("v", {})])
    assert [c.count for c in created] == [5] * 5 + [1]
    marked = await sqlite_store.mark_seen("u", [c.id for c in created[:2]])
    assert (marked.changed, marked.count) == (2, 3)
    again = await sqlite_store.mark_seen("u", [c.id for c in created[:3]])
    assert (again.changed, again.count) == (1, 2)
    assert (await sqlite_store.create("u", {})).count == 3
    assert (await sqlite_store.unseen("u")).count == 3 == _truth(sqlite_store, "u")
    assert (await sqlite_store.unseen("v")).count == 1 == _truth(sqlite_store, "v")


async def test_a_write_announced_by_the_application_is_counted(sqlite_store: SQLiteStore) -> None:
    first = await sqlite_store.create("u", {})
    # The application writes the file itself: two records more, and marks one seen.
    _behind_pns(
        sqlite_store,
        "INSERT INTO notifications VALUES ('app-1', 'u', '{}', ?, NULL),"
        " ('app-2', 'u', '{}', ?, NULL)",
        STAMP,
        STAMP,
    )
    _behind_pns(
        sqlite_store,
        "UPDATE notifications SET seen_date = ? WHERE notification_id = ?",
        STAMP,
        first.id,
    )
    # Not announced yet: PNS goes by the count it kept (the protocol asks for announce()).
    assert (await sqlite_store.unseen("u")).count == 1
    rev = await sqlite_store.bump_rev("u")  # what the publisher's announce() does
    unseen = await sqlite_store.unseen("u")
    assert (unseen.rev, unseen.count) == (rev, 2) and _truth(sqlite_store, "u") == 2
    assert (await sqlite_store.create("u", {})).count == 3 == _truth(sqlite_store, "u")


async def test_a_writer_that_does_not_keep_the_count_makes_pns_count_again(
    sqlite_store: SQLiteStore,
) -> None:
    await sqlite_store.create_many([("u", {}), ("u", {})])
    # Another program on the file: it adds a record and raises the rev only.
    _behind_pns(
        sqlite_store,
        "INSERT INTO notifications VALUES ('old-1', 'u', '{}', ?, NULL)",
        STAMP,
    )
    _behind_pns(sqlite_store, "UPDATE pns_users SET rev = rev + 1 WHERE user_id = 'u'")
    assert (await sqlite_store.unseen("u")).count == 3
    assert (await sqlite_store.create("u", {})).count == 4
    marked = await sqlite_store.mark_seen("u", ["old-1"])
    assert (marked.changed, marked.count) == (1, 3) and _truth(sqlite_store, "u") == 3


async def test_the_kept_count_never_goes_negative(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.create("42", {"n": 0})  # the kept count is now true: 1
    # Three records the application wrote itself and never announced: PNS's count is
    # behind, and marking them would take it below zero.
    for n in range(3):
        _behind_pns(
            sqlite_store,
            "INSERT INTO notifications VALUES (?, '42', '{}', ?, NULL)",
            f"app-{n}",
            STAMP,
        )
    marked = await sqlite_store.mark_seen("42", ["app-0", "app-1", "app-2"])
    assert marked.changed == 3
    assert marked.count == 1 == _truth(sqlite_store, "42")
    assert (await sqlite_store.unseen("42")).count == 1
