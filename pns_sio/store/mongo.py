"""The MongoDB backend, on PyMongo's native async API (``AsyncMongoClient``).

Collections: ``notifications`` (the data model of docs/protocol.md) and
``pns_users`` (``{_id: user_id, user_id, rev}``). MongoDB has no transaction
here, so the rev rule of ``store/__init__.py`` is kept by ordering: every
write to ``notifications`` that changes a user's unseen set is followed by a
bump of that user's rev, and ``unseen`` reads rev before it counts. A count
sent with rev R was therefore taken after every change that led to R.

Driver errors that mean "the database did not answer" become
``StoreUnavailable`` here; nothing above ``store/`` imports pymongo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    InvalidName,
    OperationFailure,
    PyMongoError,
)

from ..errors import SettingsError, StoreUnavailable
from . import Created, JSONObject, Marked, Notification, UnseenCount

__all__ = ["MongoStore"]

Document = dict[str, Any]

DEFAULT_DATABASE = "pns"
NOTIFICATIONS = "notifications"
USERS = "pns_users"

# Building the index on a large existing collection can outlast the per-call
# timeout; give it this long. (Under pymongo.timeout() server selection waits
# as long too, so open() pings first to fail fast when the server is down.)
INDEX_BUILD_TIMEOUT = 120.0

# Server error codes that mean the server is unreachable, stepping down,
# shutting down or out of time (PyMongo's retryable-error set, plus
# MaxTimeMSExpired). Codes 13/18: it refuses our credentials, which to a
# caller is the same as down, and /readyz must say so.
_OUTAGE_CODES = frozenset({6, 7, 13, 18, 50, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602})


def _is_outage(exc: PyMongoError) -> bool:
    if isinstance(exc, ConnectionFailure) or exc.timeout:
        return True
    if isinstance(exc, OperationFailure) and exc.code in _OUTAGE_CODES:
        return True
    return exc.has_error_label("RetryableWriteError")


@contextmanager
def _unavailable_on_outage() -> Iterator[None]:
    """Turn an outage-like driver error into ``StoreUnavailable``; others pass unchanged."""
    try:
        yield
    except PyMongoError as exc:
        if _is_outage(exc):
            raise StoreUnavailable() from exc
        raise


def _now() -> datetime:
    # BSON datetimes keep milliseconds: truncate now, so that what create()
    # returns equals what get() and list_unseen() read back later.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _utc(value: datetime) -> datetime:
    # tz_aware=True gives bson's own UTC tzinfo; hand out the stdlib one.
    return value.astimezone(UTC)


def _object_id(value: object) -> ObjectId | None:
    """The ObjectId ``value`` spells, or None for anything malformed."""
    if isinstance(value, str) and ObjectId.is_valid(value):
        return ObjectId(value)
    return None


def _notification(doc: Mapping[str, Any]) -> Notification:
    seen = doc.get("seen_date")
    return Notification(
        id=str(doc["_id"]),
        user_id=str(doc["user_id"]),
        data=doc.get("notification_data") or {},
        created_at=_utc(doc["creation_date"]),
        seen_at=_utc(seen) if isinstance(seen, datetime) else None,
    )


class MongoStore:
    """``NotificationStore`` on MongoDB. Open with ``await MongoStore.open(url, timeout=...)``."""

    def __init__(self, client: AsyncMongoClient[Document], db: AsyncDatabase[Document]) -> None:
        self._client = client
        self._db = db
        self._notifications: AsyncCollection[Document] = db[NOTIFICATIONS]
        self._users: AsyncCollection[Document] = db[USERS]

    @classmethod
    async def open(cls, url: str, *, timeout: float) -> MongoStore:
        """Connect to the database named in ``url`` (default ``pns``) and create the index.

        ``timeout`` (seconds) bounds server selection, connecting and each
        socket read; the index build alone may take ``INDEX_BUILD_TIMEOUT``.
        Raises ``SettingsError`` for a URL PyMongo rejects and
        ``StoreUnavailable`` when the server does not answer in time (a build
        cut short goes on in the server; the next start waits for it again).
        """
        ms = max(1, round(timeout * 1000))
        try:
            client: AsyncMongoClient[Document] = AsyncMongoClient(
                url,
                tz_aware=True,
                serverSelectionTimeoutMS=ms,
                connectTimeoutMS=ms,
                socketTimeoutMS=ms,
            )
            db = client.get_default_database(DEFAULT_DATABASE)
        except (ConfigurationError, InvalidName, ValueError) as exc:
            # PyMongo's messages name the bad part, never the password.
            raise SettingsError(f"PNS_STORE_URL: not a usable MongoDB URL: {exc}") from exc
        store = cls(client, db)
        try:
            await store.ping()
            with _unavailable_on_outage(), pymongo.timeout(INDEX_BUILD_TIMEOUT):
                # PROTOCOL: index (user_id, seen_date, creation_date) serves
                # both the unseen count and the oldest-first listing.
                await store._notifications.create_index(
                    [("user_id", 1), ("seen_date", 1), ("creation_date", 1)]
                )
        except BaseException:
            await client.close()
            raise
        return store

    async def create(self, user_id: str, data: JSONObject) -> Created:
        """Insert an unseen notification, then raise the user's rev.

        If the insert succeeds but the rev bump fails, ``StoreUnavailable`` is
        raised with the record kept; the next bump for the user covers it.
        """
        now = _now()
        doc: Document = {
            "user_id": user_id,
            "notification_data": data,
            "creation_date": now,
            "seen_date": None,
        }
        with _unavailable_on_outage():
            result = await self._notifications.insert_one(doc)
        rev = await self.bump_rev(user_id)
        return Created(id=str(result.inserted_id), created_at=now, rev=rev)

    async def unseen(self, user_id: str) -> UnseenCount:
        # Rev first, count after: a change racing this call either shows in
        # the count or raises rev past the one we send, so ours loses.
        rev = await self._read_rev(user_id)
        with _unavailable_on_outage():
            count = await self._notifications.count_documents(
                {"user_id": user_id, "seen_date": None}
            )
        return UnseenCount(count=count, rev=rev)

    async def list_unseen(self, user_id: str, limit: int) -> list[Notification]:
        if limit <= 0:
            return []  # MongoDB reads limit(0) as "no limit"
        cursor = (
            self._notifications.find({"user_id": user_id, "seen_date": None})
            .sort([("creation_date", 1), ("_id", 1)])
            .limit(limit)
        )
        with _unavailable_on_outage():
            return [_notification(doc) async for doc in cursor]

    async def mark_seen(self, user_id: str, ids: list[str]) -> Marked:
        oids = list({oid for oid in map(_object_id, ids) if oid is not None})
        changed = 0
        if oids:
            # The filter re-checks seen_date in the same atomic per-document
            # update, so concurrent calls on the same ids count each one once.
            with _unavailable_on_outage():
                result = await self._notifications.update_many(
                    {"_id": {"$in": oids}, "user_id": user_id, "seen_date": None},
                    {"$set": {"seen_date": _now()}},
                )
            changed = result.modified_count
        rev = await self.bump_rev(user_id) if changed else await self._read_rev(user_id)
        return Marked(changed=changed, rev=rev)

    async def bump_rev(self, user_id: str) -> int:
        with _unavailable_on_outage():
            try:
                doc = await self._bump(user_id)
            except DuplicateKeyError:
                # Two first bumps of a user raced to upsert the same _id; the
                # loser's retry finds the winner's document and increments it.
                doc = await self._bump(user_id)
        return int(doc["rev"])

    async def get(self, notification_id: str) -> Notification | None:
        oid = _object_id(notification_id)
        if oid is None:
            return None
        with _unavailable_on_outage():
            doc = await self._notifications.find_one({"_id": oid})
        return None if doc is None else _notification(doc)

    async def ping(self) -> None:
        with _unavailable_on_outage():
            await self._db.command("ping")

    async def close(self) -> None:
        await self._client.close()

    async def _read_rev(self, user_id: str) -> int:
        with _unavailable_on_outage():
            doc = await self._users.find_one({"_id": user_id}, projection={"rev": 1})
        return 0 if doc is None else int(doc["rev"])

    async def _bump(self, user_id: str) -> Document:
        doc = await self._users.find_one_and_update(
            {"_id": user_id},
            {"$inc": {"rev": 1}, "$setOnInsert": {"user_id": user_id}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # cannot happen with upsert=True and AFTER
            raise RuntimeError(f"rev upsert returned nothing for user {user_id!r}")
        return doc
