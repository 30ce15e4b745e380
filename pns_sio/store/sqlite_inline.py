"""SQLite calls made on the event loop when they cannot wait.

Handing a call to the store's thread and back costs more CPU than the call: on
these machines a create costs 0.03 ms of CPU inline and 0.17 ms through a
thread that must be woken for it (bench/RESULTS.md, session 8). So each call is
tried here first, on a connection that never waits: its busy timeout is 0, so
while another connection (the store's own thread, another node's process)
holds the write lock, the call gives way at once (``GAVE_WAY``) and goes to the
thread, which waits for the lock off the loop. A call that ran here ran whole.

What else could make a call wait is kept off this connection: it never
checkpoints the WAL (each checkpoint writes pages back to the database file
and syncs it); every ``CHECKPOINT_EVERY`` commits it asks the thread to.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

CHECKPOINT_EVERY = 100  # commits between checkpoints (a few pages each; SQLite's own: 1,000)
GAVE_WAY: Final = object()  # the call must wait for a lock: run it on the thread instead

_WAITS = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class InlineConnection:
    """One connection used from the event loop's thread only."""

    def __init__(
        self, path: str, *, writer: bool, checkpoint: Callable[[], None] | None = None
    ) -> None:
        self._path = path
        self._writer = writer
        self._checkpoint = checkpoint
        self._conn: sqlite3.Connection | None = None
        self._commits = 0

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T | object:
        """``fn(connection)`` now (a writer's in a transaction of its own), or
        ``GAVE_WAY`` when it would have to wait for a lock (nothing of it stays).
        sqlite3 errors other than waiting are raised."""
        conn = self._connection()
        try:
            if self._writer:
                conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            if self._writer:
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _rollback(conn)
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _WAITS:
                return GAVE_WAY
            raise
        except BaseException:
            _rollback(conn)
            raise
        if self._writer:
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0 and self._checkpoint is not None:
                self._checkpoint()
        return result

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = connect(self._path, busy_timeout=0)
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn = conn
        return self._conn


def connect(path: str, *, busy_timeout: float) -> sqlite3.Connection:
    """A store connection: PNS writes BEGIN/COMMIT itself (``isolation_level=None``),
    waits up to ``busy_timeout`` seconds for another connection's lock, and syncs at
    checkpoints only (``synchronous = NORMAL``, safe with the WAL)."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def checkpoint(conn: sqlite3.Connection) -> Any:
    """Copy what the WAL holds back into the database file, as far as no reader
    stops it (``PASSIVE``: it never waits)."""
    return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
