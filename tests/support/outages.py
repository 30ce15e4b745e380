"""Real store outages: take the database away from the node, then give it back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sqlite_write_locked(url: str) -> Iterator[None]:
    """Another process holds SQLite's write lock: every write of the node gets SQLITE_BUSY.

    (In WAL mode readers never wait for a writer, so reads keep working.)
    """
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()
