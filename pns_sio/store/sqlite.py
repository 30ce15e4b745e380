"""SQLite store: the embedded default (one file, WAL mode, several processes may share it).

sqlite3 blocks, so every call runs on a thread that owns its own connection
(``sqlite_worker``): one for writes (SQLite has one writer anyway), which
commits the writes waiting together in one transaction, and one for reads,
which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId

from .. import jsoncodec
from ..errors import StoreUnavailable
from . import (
    IDEMPOTENCY_ABANDONED,
    IDEMPOTENCY_TTL,
    Claim,
    Created,
    JSONObject,
    Marked,
    Notification,
    UnseenCount,
    undeliverable,
)
from .sqlite_schema import (
    BUMP_REV,
    BUMP_REV_AND_COUNT,
    COUNT_UNSEEN,
    INSERT_NOTIFICATION,
    LIST_UNSEEN,
    PURGE_WINDOW,
    RECOUNT,
    SCHEMA,
)
from .sqlite_worker import SQLiteThread


def _now() -> datetime:
    return datetime.now(UTC)


def _to_text(moment: datetime) -> str:
    # Fixed width, always UTC: text order is time order, so ORDER BY works on it.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


class SQLiteStore:
    """``NotificationStore`` over one SQLite file."""

    # Seen notifications past retention are deleted by the node's periodic purge.
    EXPIRES_ITSELF = False

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        # An in-memory database is one per connection: only the threads' own.
        inline = path != ":memory:"
        self._writer = SQLiteThread(path, timeout, "pns-sqlite-w", writer=True, inline=inline)
        self._reader = SQLiteThread(path, timeout, "pns-sqlite-r", writer=False, inline=inline)

    @classmethod
    async def open(cls, url: str, *, timeout: float = 5.0) -> SQLiteStore:
        path = url.removeprefix("sqlite:///")
        if path != ":memory:":
            _create_private(Path(path))
        store = cls(path, timeout)

        def prepare(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)

        # Nodes starting together on a new file race to switch it to WAL and
        # create the tables; SQLite answers "locked" at once there (its busy
        # handler is skipped where waiting could deadlock), so retry until
        # the timeout.
        deadline = time.monotonic() + timeout
        delay = 0.02
        try:
            while True:
                try:
                    await store._writer.run(prepare, alone=True)
                    return store
                except StoreUnavailable:
                    if time.monotonic() + delay > deadline:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
        except BaseException:
            await store.close()
            raise

    async def create(self, user_id: str, data: JSONObject) -> Created:
        return (await self.create_many([(user_id, data)]))[0]

    async def create_many(
        self, items: list[tuple[str, JSONObject]], *, ids: list[str] | None = None
    ) -> list[Created]:
        created_at = _now()
        stamp = _to_text(created_at)
        chosen = ids if ids is not None else [str(ObjectId()) for _ in items]
        rows = [
            (nid, user_id, jsoncodec.dumps(data, separators=(",", ":")))
            for nid, (user_id, data) in zip(chosen, items, strict=True)
        ]

        def write(conn: sqlite3.Connection) -> list[Created]:
            # One transaction (the writer's): every record and the revs commit
            # together, or nothing.
            stored: dict[str, datetime] = {}
            if ids is None:
                conn.executemany(INSERT_NOTIFICATION, [(n, u, b, stamp) for n, u, b in rows])
                added = Counter(u for _, u, _ in rows)
            else:
                stored = _stored_dates(conn, [n for n, _, _ in rows])
                fresh = [(n, u, b, stamp) for n, u, b in rows if n not in stored]
                conn.executemany(INSERT_NOTIFICATION, fresh)
                added = Counter(u for _, u, _, _ in fresh)
            after: dict[str, tuple[int, int]] = {}
            for user_id in dict.fromkeys(u for _, u, _ in rows):
                # Same transaction: this count is exactly the one of this rev, so
                # the nodes can send it as is instead of each asking again.
                after[user_id] = _bump(conn, user_id, added[user_id])
            return [
                Created(
                    id=n,
                    created_at=stored.get(n, created_at),
                    rev=after[u][0],
                    count=after[u][1],
                )
                for n, u, _ in rows
            ]

        if not rows:
            return []
        return await self._writer.run(write)

    async def unseen(self, user_id: str) -> UnseenCount:
        def read(conn: sqlite3.Connection) -> UnseenCount:
            # One read transaction: rev and count come from the same snapshot.
            conn.execute("BEGIN")
            row = conn.execute(
                "SELECT rev, unseen, unseen_rev FROM pns_users WHERE user_id = ?", (user_id,)
            ).fetchone()
            if row is not None and row[1] is not None and row[2] == row[0]:
                count = row[1]
            else:
                count = conn.execute(COUNT_UNSEEN, (user_id,)).fetchone()[0]
            conn.execute("COMMIT")
            return UnseenCount(count=int(count), rev=int(row[0]) if row else 0)

        return await self._reader.run(read)

    async def list_unseen(self, user_id: str, limit: int) -> list[Notification]:
        def read(conn: sqlite3.Connection) -> list[Notification]:
            rows = conn.execute(LIST_UNSEEN, (user_id, limit)).fetchall()
            return [_row_to_notification(row) for row in rows]

        return await self._reader.run(read)

    async def mark_seen(self, user_id: str, ids: list[str]) -> Marked:
        unique = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
        seen_at = _to_text(_now())

        def write(conn: sqlite3.Connection) -> Marked:
            changed = 0
            # Chunks keep each statement under SQLite's bound-parameter limit.
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cursor = conn.execute(
                    "UPDATE notifications SET seen_date = ? WHERE user_id = ?"
                    f" AND seen_date IS NULL AND notification_id IN ({marks})",
                    (seen_at, user_id, *chunk),
                )
                changed += cursor.rowcount
            count = None
            if changed:
                rev, count = _bump(conn, user_id, -changed)
            else:
                row = conn.execute(
                    "SELECT rev FROM pns_users WHERE user_id = ?", (user_id,)
                ).fetchone()
                rev = int(row[0]) if row else 0
            return Marked(changed=changed, rev=rev, count=count)

        return await self._writer.run(write)

    async def bump_rev(self, user_id: str) -> int:
        def write(conn: sqlite3.Connection) -> int:
            # An announced write may be anything the application did itself: count again.
            rev = int(conn.execute(BUMP_REV, (user_id,)).fetchone()[0])
            conn.execute(RECOUNT, (user_id,)).fetchone()
            return rev

        return await self._writer.run(write)

    async def get(self, notification_id: str) -> Notification | None:
        def read(conn: sqlite3.Connection) -> Notification | None:
            row = conn.execute(
                "SELECT notification_id, user_id, notification_data, creation_date, seen_date"
                " FROM notifications WHERE notification_id = ?",
                (notification_id,),
            ).fetchone()
            return _row_to_notification(row) if row else None

        return await self._reader.run(read)

    async def purge_seen(self, before: datetime) -> int:
        cut = _to_text(before)

        def bounds(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
            low, high = conn.execute("SELECT min(rowid), max(rowid) FROM notifications").fetchone()
            return low, high

        def delete_window(start: int) -> Callable[[sqlite3.Connection], int]:
            def write(conn: sqlite3.Connection) -> int:
                cursor = conn.execute(
                    "DELETE FROM notifications WHERE rowid >= ? AND rowid < ?"
                    " AND seen_date IS NOT NULL AND seen_date < ?",
                    (start, start + PURGE_WINDOW, cut),
                )
                return int(cursor.rowcount)

            return write

        def forget_keys(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM pns_idempotency WHERE created_at < ?",
                (_to_text(_now() - IDEMPOTENCY_TTL),),
            )

        # Rows added meanwhile are unseen, so the windows' condition keeps them wherever
        # their rowids fall.
        # Background work on the thread: a window deletes up to thousands of rows,
        # which the loop has no reason to wait out.
        low, high = await self._writer.run(bounds, inline=False)
        deleted = 0
        if low is not None and high is not None:
            for start in range(low, high + 1, PURGE_WINDOW):
                deleted += await self._writer.run(delete_window(start), inline=False)
        await self._writer.run(forget_keys, inline=False)
        return deleted

    async def claim_key(self, key: str, fingerprint: str) -> Claim:
        now = _now()

        def write(conn: sqlite3.Connection) -> Claim:
            row = conn.execute(
                "SELECT fingerprint, response, created_at FROM pns_idempotency WHERE key = ?",
                (key,),
            ).fetchone()
            claim = _judge_claim(row, fingerprint, now)
            if claim.state == "new":
                conn.execute(
                    "INSERT OR REPLACE INTO pns_idempotency (key, fingerprint, response,"
                    " created_at) VALUES (?, ?, NULL, ?)",
                    (key, fingerprint, _to_text(now)),
                )
            return claim

        return await self._writer.run(write)

    async def complete_key(self, key: str, response: JSONObject) -> None:
        body = json.dumps(response, separators=(",", ":"))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE pns_idempotency SET response = ? WHERE key = ?", (body, key))

        await self._writer.run(write)

    async def release_key(self, key: str) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM pns_idempotency WHERE key = ? AND response IS NULL", (key,))

        await self._writer.run(write)

    async def ping(self) -> None:
        def read(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT 1 FROM pns_users LIMIT 1").fetchall()

        await self._reader.run(read)

    async def close(self) -> None:
        # Stopped here, on the loop, before their connections close in a worker thread.
        self._reader.stop()
        self._writer.stop()
        await asyncio.to_thread(self._close_threads)

    def _close_threads(self) -> None:
        self._reader.close()
        self._writer.close()


def _stored_dates(conn: sqlite3.Connection, ids: list[str]) -> dict[str, datetime]:
    """The creation dates of those of ``ids`` that are stored already."""
    found: dict[str, datetime] = {}
    for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        query = (
            "SELECT notification_id, creation_date FROM notifications"
            f" WHERE notification_id IN ({marks})"
        )
        for nid, created in conn.execute(query, chunk):
            found[nid] = _from_text(created)
    return found


def _create_private(path: Path) -> None:
    """Create the database file (and any directory PNS makes for it) readable by its
    owner only, before SQLite opens it: SQLite gives the -wal and -shm files the
    database file's own mode. An existing file keeps the mode its owner gave it."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another node made it meanwhile
            directory.mkdir(mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _bump(conn: sqlite3.Connection, user_id: str, delta: int) -> tuple[int, int]:
    """Raise the user's rev after a write that changed its unseen records by ``delta``;
    the new (rev, unseen count), both of this transaction."""
    rev, unseen = conn.execute(BUMP_REV_AND_COUNT, (user_id, delta)).fetchone()
    if unseen is None:
        unseen = conn.execute(RECOUNT, (user_id,)).fetchone()[0]
    return int(rev), int(unseen)


def _judge_claim(row: tuple[Any, ...] | None, fingerprint: str, now: datetime) -> Claim:
    if row is None:
        return Claim("new")
    stored_fingerprint, response, created = row
    age = now - _from_text(created)
    if age > IDEMPOTENCY_TTL:
        return Claim("new")
    if stored_fingerprint != fingerprint:
        return Claim("mismatch")
    if response is not None:
        return Claim("done", json.loads(response))
    return Claim("new") if age > IDEMPOTENCY_ABANDONED else Claim("pending")


def _row_to_notification(row: tuple[Any, ...]) -> Notification:
    nid, user_id, body, created, seen = row
    try:
        data = jsoncodec.loads(body)
        if not isinstance(data, dict):
            raise ValueError("notification_data is not a JSON object")
        return Notification(
            id=nid,
            user_id=user_id,
            data=data,
            created_at=_from_text(created),
            seen_at=_from_text(seen) if seen else None,
        )
    except (ValueError, TypeError) as exc:  # a row another program wrote
        return undeliverable(str(nid), str(user_id), f"{type(exc).__name__}: {exc}"[:200])
