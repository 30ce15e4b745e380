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
and syncs it); every ``CHECKPOINT_EVERY`` writes it asks the thread to.

While writes come several to a turn of the loop, they share one transaction
(``join``): each runs at once, the commit comes at the end of the turn, and each
caller waits for it. A commit (its lock round and its WAL write) costs more than
a create's statements, so a busy turn pays it once for all of its writes. A write
alone in its turn commits at once instead (``run``): waiting for the end of the
turn would cost it a loop turn and a timer for nothing (bench/RESULTS.md, session
12). A write that joins an open transaction runs in a savepoint, so its failure
undoes it alone.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Writes between checkpoints. Each appends a page or a few to the WAL, so it stays
# within a few MB (SQLite's own checkpoint comes every 1,000 pages). Writes wait out
# a checkpoint (sqlite_worker.py), and one every 100 writes cost a fetch's store a
# third more CPU and five times its latency (bench/RESULTS.md, session 12).
CHECKPOINT_EVERY = 1000
GAVE_WAY: Final = object()  # the call must wait for a lock: run it on the thread instead
# Writes one transaction carries at most: a turn of a busy loop can hold hundreds, and
# the transaction holds the write lock (another node's writes wait) until it commits.
GROUP_MAX = 64
RETRY: Final = object()  # another write of the transaction gave up: nothing was written, run again

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
        self._writes = 0  # committed since the last checkpoint
        # The open transaction's writers, one future each (done at its commit), or None.
        self._joined: list[asyncio.Future[object]] | None = None
        # Whether writes come several a turn: the last shared transaction carried more
        # than one, or the last turn committed more than one alone.
        self._together = False
        self._alone = 0  # writes committed alone this turn

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
            rollback(conn)
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _WAITS:
                return GAVE_WAY
            raise
        except BaseException:
            rollback(conn)
            raise
        if self._writer:
            self._committed(1)
            self._alone += 1
            if self._alone == 1:
                asyncio.get_running_loop().call_soon(self._turn_ended)
        return result

    @property
    def grouping(self) -> bool:
        """Whether a write now should ``join`` a transaction shared with the turn's
        other writes rather than ``run`` alone."""
        return self._joined is not None or self._together

    def _turn_ended(self) -> None:
        self._together = self._alone > 1
        self._alone = 0

    def join(
        self, fn: Callable[[sqlite3.Connection], T]
    ) -> tuple[T, asyncio.Future[object]] | object:
        """A writer's ``fn(connection)`` now, in the transaction this turn of the loop
        shares (opened here if none is); the result and a future the caller awaits
        before using it. The future is done at the end of the turn: None once the
        transaction committed, ``RETRY`` when it was undone because another of its
        callers gave up, or the commit's error. ``GAVE_WAY`` as ``run``; ``fn``'s own
        errors are raised here, with nothing of it left in the transaction."""
        conn = self._connection()
        joined = self._joined
        try:
            if joined is None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    rollback(conn)  # it was alone in the transaction
                    raise
                joined = self._joined = []
                asyncio.get_running_loop().call_soon(self.commit)
            else:
                conn.execute("SAVEPOINT job")
                try:
                    result = fn(conn)
                    conn.execute("RELEASE job")
                except BaseException:
                    if not undo_savepoint(conn):
                        self._lost(joined)  # SQLite undid the whole transaction
                    raise
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _WAITS:
                return GAVE_WAY
            raise
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        joined.append(future)
        if len(joined) >= GROUP_MAX:
            self.commit()  # the turn's next writes start another
        return result, future

    def commit(self) -> None:
        """End the open transaction, if any, and tell its writers how it ended."""
        joined, self._joined = self._joined, None
        if joined is None:
            return
        conn = self._connection()
        if any(future.cancelled() for future in joined):
            # A caller gave up (its timeout, its task cancelled) and may have been told
            # its write failed, so it must not commit; savepoints are gone once released,
            # so all of it is undone and the others run again.
            rollback(conn)
            _tell(joined, RETRY)
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            rollback(conn)
            _tell(joined, exc)
            return
        _tell(joined, None)
        self._together = len(joined) > 1
        self._committed(len(joined))

    def _lost(self, joined: list[asyncio.Future[object]]) -> None:
        """The open transaction is gone with what its writers wrote: they are told."""
        self._joined = None
        _tell(joined, sqlite3.OperationalError("the transaction was rolled back"))

    def _committed(self, writes: int) -> None:
        self._writes += writes
        if self._writes >= CHECKPOINT_EVERY and self._checkpoint is not None:
            self._writes = 0
            self._checkpoint()

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


def rollback(conn: sqlite3.Connection) -> None:
    """End the open transaction, if any, writing nothing (a failure is logged: the
    connection's next BEGIN will say so too)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            logger.warning("sqlite rollback failed", exc_info=True)


def undo_savepoint(conn: sqlite3.Connection) -> bool:
    """Undo the failed write's savepoint; False when the transaction is gone."""
    if not conn.in_transaction:
        return False
    try:
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
    except sqlite3.Error:
        rollback(conn)
        return False
    return True


def _tell(joined: list[asyncio.Future[object]], outcome: object) -> None:
    for future in joined:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def checkpoint(conn: sqlite3.Connection) -> Any:
    """Copy what the WAL holds back into the database file, as far as no reader
    stops it (``PASSIVE``: it never waits)."""
    return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
