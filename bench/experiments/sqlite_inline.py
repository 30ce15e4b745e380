"""Run PNS's SQLite store calls on the event loop instead of on the store's threads: a bench
probe (what the threads cost or save), never part of PNS. A write waiting for another
process's lock would block the loop, which is why PNS has the threads.

Used by pns_variant.py (variants sqlitereads, sqliteinline), floor_server.py
(BENCH_FLOOR_STORE=inline) and store_cost.py (inline).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from pns_sio.errors import StoreUnavailable
from pns_sio.store import sqlite_worker
from pns_sio.store.sqlite_inline import connect


def install(*, reads_only: bool = False) -> None:
    """Replace ``SQLiteThread.run``: reads (and writes, unless ``reads_only``) run at once on
    the caller's loop, each write in its own transaction; work marked ``alone`` (schema,
    journal mode) stays on the thread."""
    thread_run = sqlite_worker.SQLiteThread.run
    conns: dict[int, sqlite3.Connection] = {}

    async def run(self: sqlite_worker.SQLiteThread, fn: Any, *, alone: bool = False) -> Any:
        if alone or (self._writer and reads_only):
            return await thread_run(self, fn, alone=alone)
        conn = conns.get(id(self))
        if conn is None:
            conn = conns[id(self)] = connect(self._path, busy_timeout=self._timeout)
        try:
            if self._writer:
                conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            if self._writer:
                conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"the notification store is unavailable ({exc})") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    sqlite_worker.SQLiteThread.run = run  # type: ignore[method-assign]
