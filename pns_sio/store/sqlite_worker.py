"""The thread that owns one SQLite connection and runs the store's calls in batches.

sqlite3 blocks, so calls run off the event loop. Handing each call to a
thread and back costs more than most of them take (a count or an insert is
tens of microseconds), so the thread takes every job that is waiting at once:

- a writer runs the waiting jobs in one transaction (group commit), each in
  its own savepoint so one job's failure undoes only that job; one lock
  round and one WAL commit serve the whole batch, which matters most when
  several processes share the file;
- a reader runs them one after another on its connection;
- either way the results go back to the loop in one wake-up per batch.

Most calls never reach the thread: they run on the loop when they can without
waiting (``sqlite_inline.py``), and come here when they would have to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from ..errors import StoreUnavailable
from .sqlite_inline import (
    GAVE_WAY,
    RETRY,
    InlineConnection,
    checkpoint,
    connect,
    rollback,
    undo_savepoint,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_MAX = 64  # jobs per transaction: bounds how long one batch holds the write lock
COMMIT_MARGIN = 0.5  # seconds past a job's deadline it may still commit (the guard allows 1)


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    deadline: float
    alone: bool  # runs outside any batch transaction (PRAGMA journal_mode, schema)
    result: Any = None
    error: BaseException | None = field(default=None)


class SQLiteThread:
    """One thread, the connection it owns, and the queue of jobs it runs."""

    def __init__(
        self, path: str, timeout: float, name: str, *, writer: bool, inline: bool = True
    ) -> None:
        self._path = path
        self._timeout = timeout
        self._writer = writer
        self._inline = (
            # Only a writer commits, so only a writer's commits call for checkpoints.
            InlineConnection(
                path, writer=writer, checkpoint=self._checkpoint_soon if writer else None
            )
            if inline
            else None
        )
        # Jobs handed to the thread whose results have not come back. While there are
        # any, the thread holds the write lock or is about to take it: a call tried on
        # the loop would only give way and queue behind them, and a queue that new
        # calls keep joining keeps the thread in its batches for good, every call
        # paying the hop (99 % of a fetch's marks did; bench/RESULTS.md, session 11).
        # So calls wait on the loop until the thread is done, then run there. This
        # also keeps writes behind a checkpoint: the first one after it finds the WAL
        # copied back and starts it over; one that started between would keep it
        # growing. A woken call waits again if the calls woken before it handed the
        # thread another checkpoint: they join one transaction a turn, up to
        # GROUP_MAX, so a call is woken about once per CHECKPOINT_EVERY calls waiting
        # ahead of it.
        self._handed = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    async def run(
        self, fn: Callable[[sqlite3.Connection], T], *, alone: bool = False, inline: bool = True
    ) -> T:
        """Run ``fn(connection)``: on the loop if it can run there without waiting
        (``inline``), else on the thread. A writer runs it inside a transaction
        (``alone``: outside one, by itself, on the thread); sqlite3 errors become
        ``StoreUnavailable``."""
        on_loop = self._inline if inline and not alone else None
        while on_loop is not None:
            while self._handed:
                await self._idle.wait()
            if self._closed:
                raise StoreUnavailable("the notification store is closed")
            try:
                if not (self._writer and on_loop.grouping):
                    result = on_loop.run(fn)
                    if result is not GAVE_WAY:
                        return result  # type: ignore[return-value]
                    break
                joined = on_loop.join(fn)
                if joined is GAVE_WAY:
                    break
                result, committed = cast("tuple[T, asyncio.Future[object]]", joined)
                if await committed is not RETRY:
                    return result
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the notification store is unavailable ({exc})") from exc
        # Another process holds the lock: the thread waits for it, off the loop.
        if self._closed:
            raise StoreUnavailable("the notification store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # A job that waited in the queue past the timeout does not start: its
        # caller has been told "unavailable", so it must not write after all.
        self._hand(_Job(fn, future, loop, time.monotonic() + self._timeout, alone))
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the notification store is unavailable ({exc})") from exc

    def stop(self) -> None:
        """On the loop: refuse calls from now on. No call starts on the loop's own
        connection after this, so ``close`` may close it from another thread."""
        if not self._closed:
            self._closed = True
            if self._inline is not None:
                # This turn's writes commit now, before the connection can be closed.
                self._inline.commit()
            self._jobs.put(None)

    def close(self) -> None:
        """Finish the queued jobs, close the connections and end the thread (blocks).

        Off the loop, ``stop()`` first: a call running on the loop's connection while
        another thread closes it would crash the process (sqlite3 connections are not
        safe across threads). Calls waiting for the thread are woken by its last results
        and find the store closed."""
        self.stop()
        self._thread.join()
        if self._inline is not None:
            self._inline.close()

    def _checkpoint_soon(self) -> None:
        """Have the thread checkpoint the WAL; nobody waits for it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(self._checkpointed)
        self._hand(_Job(checkpoint, future, loop, time.monotonic() + self._timeout, True))

    @staticmethod
    def _checkpointed(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.info("WAL checkpoint failed: %s", future.exception())

    def _hand(self, job: _Job[Any]) -> None:
        self._handed += 1
        self._idle.clear()
        self._jobs.put(job)

    def _settled(self, jobs: list[_Job[Any]]) -> None:
        """On the loop: the thread's results are in."""
        _settle(jobs)
        self._handed -= len(jobs)
        if not self._handed:
            self._idle.set()

    # -- on the thread -----------------------------------------------------------

    def _main(self) -> None:
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < BATCH_MAX:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    batch.append(job)
                self._run_batch(batch)
                _settle_all(batch, self._settled)
                if stop:
                    return
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self._path, busy_timeout=self._timeout)
        return self._conn

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        together: list[_Job[Any]] = []
        for job in batch:
            if self._writer and not job.alone:
                together.append(job)
                continue
            if together:
                self._transaction(together)
                together = []
            if _may_start(job):
                self._one(job)
        if together:
            self._transaction(together)

    def _one(self, job: _Job[Any]) -> None:
        try:
            conn = self._connection()
            try:
                job.result = job.fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except Exception as exc:  # handed to the caller, who re-raises it
            job.error = exc

    def _transaction(self, jobs: list[_Job[Any]]) -> None:
        jobs = [job for job in jobs if _may_start(job)]
        if not jobs:
            return
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for job in jobs:
                job.error = exc
            return
        # BEGIN IMMEDIATE may have waited up to the busy timeout for another process's
        # write lock: a job whose caller was answered meanwhile must not write now.
        jobs = [job for job in jobs if _may_start(job)]
        if not jobs:
            rollback(conn)
            return
        if len(jobs) == 1:
            # Alone in its transaction: no savepoint needed (two statements fewer).
            self._alone_in_transaction(conn, jobs[0])
            return
        done = _in_savepoints(conn, jobs)
        if done is None:
            return
        if not all(_may_commit(job) for job in done):
            rollback(conn)
            for job in done:
                job.error = sqlite3.OperationalError("a caller gave up before the commit")
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            rollback(conn)
            for job in done:
                job.error = exc

    @staticmethod
    def _alone_in_transaction(conn: sqlite3.Connection, job: _Job[Any]) -> None:
        try:
            job.result = job.fn(conn)
            if not _may_commit(job):
                raise sqlite3.OperationalError("the caller gave up before the commit")
            conn.execute("COMMIT")
        except Exception as exc:
            job.error = exc
            rollback(conn)


def _in_savepoints(conn: sqlite3.Connection, jobs: list[_Job[Any]]) -> list[_Job[Any]] | None:
    """Run each job in its own savepoint of the open transaction; the jobs that ran, or
    None when SQLite rolled the whole transaction back (then every job has an error)."""
    done: list[_Job[Any]] = []
    for job in jobs:
        # Checked again: an earlier job of the batch may have run long.
        if not _may_start(job):
            continue
        try:
            conn.execute("SAVEPOINT job")
            job.result = job.fn(conn)
            conn.execute("RELEASE job")
            done.append(job)
        except Exception as exc:
            job.error = exc
            if not undo_savepoint(conn):
                # SQLite rolled the whole transaction back (disk full, I/O
                # error): nothing of this batch was written.
                for other in done:
                    other.error = exc
                return None
    return done


def _may_start(job: _Job[Any]) -> bool:
    """False for a job whose caller gave up: cancelled, or queued past the timeout."""
    if job.future.cancelled():
        return False
    if time.monotonic() > job.deadline:
        job.error = sqlite3.OperationalError("timed out waiting for the database thread")
        return False
    return True


def _may_commit(job: _Job[Any]) -> bool:
    """False once the caller may have been answered: it cancelled (the store guard's
    timeout), or the job ran past its deadline by more than ``COMMIT_MARGIN``; the
    guard answers ``unavailable`` a second after the deadline, so what commits was
    never reported as failed."""
    return not job.future.cancelled() and time.monotonic() < job.deadline + COMMIT_MARGIN


def _settle_all(batch: list[_Job[Any]], settle: Callable[[list[_Job[Any]]], None]) -> None:
    """Hand the results to their loops: one wake-up per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
    for job in batch:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, jobs in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, jobs)


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)
