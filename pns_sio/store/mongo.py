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

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

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

from .. import jsoncodec
from ..errors import SettingsError, StoreUnavailable
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

__all__ = ["MongoStore"]

logger = logging.getLogger(__name__)

Document = dict[str, Any]

DEFAULT_DATABASE = "pns"
NOTIFICATIONS = "notifications"
USERS = "pns_users"
KEYS = "pns_idempotency"
# Earlier versions made (user_id, seen_date, creation_date): a prefix of this one, so it
# serves nothing this one does not; it is left in place (an application may use it).
UNSEEN_INDEX = [("user_id", 1), ("seen_date", 1), ("creation_date", 1), ("_id", 1)]

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


def _notification(doc: Mapping[str, Any]) -> Notification:
    """The record as PNS delivers it, or an ``undeliverable`` stand-in when the
    application inserted a document of another shape."""
    nid, user_id = str(doc.get("_id")), str(doc.get("user_id"))
    data = doc.get("notification_data")
    created = doc.get("creation_date")
    if not isinstance(data, dict):
        return undeliverable(nid, user_id, "notification_data is not an object")
    if not isinstance(created, datetime):
        return undeliverable(nid, user_id, "creation_date is missing or not a date")
    try:
        jsoncodec.dumps(data)  # BSON types (ObjectId, Binary, Decimal128) do not encode
    except (TypeError, ValueError) as exc:
        return undeliverable(nid, user_id, f"notification_data does not encode: {exc}"[:200])
    seen = doc.get("seen_date")
    return Notification(
        id=nid,
        user_id=user_id,
        data=data,
        created_at=_utc(created),
        seen_at=_utc(seen) if isinstance(seen, datetime) else None,
    )


def _id_forms(value: object) -> list[Any]:
    """Every ``_id`` a client's id string may stand for: an application may key its own
    records by string (or integer) ids instead of ObjectIds."""
    if not isinstance(value, str):
        return []
    forms: list[Any] = [value]
    if ObjectId.is_valid(value):
        forms.append(ObjectId(value))
    if value.isdigit() and len(value) < 19:
        forms.append(int(value))
    return forms


class MongoStore:
    """``NotificationStore`` on MongoDB. Open with ``await MongoStore.open(url, timeout=...)``."""

    # A TTL index on seen_date deletes seen notifications past retention.
    EXPIRES_ITSELF = True

    def __init__(self, client: AsyncMongoClient[Document], db: AsyncDatabase[Document]) -> None:
        self._client = client
        self._db = db
        self._notifications: AsyncCollection[Document] = db[NOTIFICATIONS]
        self._users: AsyncCollection[Document] = db[USERS]
        self._keys: AsyncCollection[Document] = db[KEYS]

    @classmethod
    async def open(
        cls, url: str, *, timeout: float, retention: timedelta | None = None
    ) -> MongoStore:
        """Connect to the database named in ``url`` (default ``pns``) and create the index.

        ``timeout`` (seconds) bounds server selection, connecting and each
        socket read; the index build alone may take ``INDEX_BUILD_TIMEOUT``.
        Raises ``SettingsError`` for a URL PyMongo rejects and
        ``StoreUnavailable`` when the server does not answer in time (a build
        cut short goes on in the server; the next start waits for it again).
        """
        ms = max(1, round(timeout * 1000))
        options: dict[str, Any] = {}
        if "w" not in {key.lower() for key in parse_qs(urlsplit(url).query)}:
            # A write acknowledged by a majority survives a failover: a rev, once sent,
            # never goes back. The URL's own w= wins (w=1 trades that for latency).
            options["w"] = "majority"
        try:
            client: AsyncMongoClient[Document] = AsyncMongoClient(
                url,
                tz_aware=True,
                serverSelectionTimeoutMS=ms,
                connectTimeoutMS=ms,
                socketTimeoutMS=ms,
                **options,
            )
            db = client.get_default_database(DEFAULT_DATABASE)
        except (ConfigurationError, InvalidName, ValueError) as exc:
            # PyMongo's messages name the bad part, never the password.
            raise SettingsError(f"PNS_STORE_URL: not a usable MongoDB URL: {exc}") from exc
        store = cls(client, db)
        try:
            await store.ping()
            with _unavailable_on_outage(), pymongo.timeout(INDEX_BUILD_TIMEOUT):
                # PROTOCOL: index (user_id, seen_date, creation_date, _id) serves
                # both the unseen count and the oldest-first listing. The _id is
                # the listing's tie-break: without it in the index, MongoDB sorts
                # every unseen record of the user in memory for each page.
                await store._notifications.create_index(UNSEEN_INDEX)
                if retention is not None:
                    await store._ensure_ttl(
                        store._notifications, "seen_date", retention, "pns_seen_retention"
                    )
                await store._ensure_ttl(
                    store._keys, "created_at", IDEMPOTENCY_TTL, "pns_idempotency_ttl"
                )
        except BaseException:
            await client.close()
            raise
        return store

    async def _ensure_ttl(
        self, collection: AsyncCollection[Document], field: str, ttl: timedelta, name: str
    ) -> None:
        seconds = int(ttl.total_seconds())
        try:
            await collection.create_index(field, name=name, expireAfterSeconds=seconds)
        except OperationFailure as exc:
            if exc.code not in (85, 86):  # IndexOptionsConflict / IndexKeySpecsConflict
                raise
            # Retention changed since the index was made: change it in place.
            await self._db.command(
                "collMod", collection.name, index={"name": name, "expireAfterSeconds": seconds}
            )

    async def create(self, user_id: str, data: JSONObject) -> Created:
        """Insert an unseen notification, then raise the user's rev.

        If the insert succeeds but the rev bump fails, ``StoreUnavailable`` is
        raised with the record kept; the next bump for the user covers it.
        """
        return (await self.create_many([(user_id, data)]))[0]

    async def create_many(
        self, items: list[tuple[str, JSONObject]], *, ids: list[str] | None = None
    ) -> list[Created]:
        """Insert the records, then raise each user's rev (see the protocol).

        No transaction here: ids are made before the insert, so when the insert
        fails part-way the records already written can be removed before
        ``StoreUnavailable`` is raised. With caller-chosen ``ids`` a record stored
        by an earlier try is left as it is (a duplicate key is that record).
        """
        if not items:
            return []
        now = _now()
        chosen = [ObjectId(i) for i in ids] if ids is not None else [ObjectId() for _ in items]
        docs: list[Document] = [
            {
                "_id": oid,
                "user_id": user_id,
                "notification_data": data,
                "creation_date": now,
                "seen_date": None,
            }
            for oid, (user_id, data) in zip(chosen, items, strict=True)
        ]
        stored: dict[ObjectId, datetime] = {}
        if ids is not None:
            stored = await self._stored_dates(chosen)
        fresh = [doc for doc in docs if doc["_id"] not in stored]
        try:
            with _unavailable_on_outage():
                if fresh:
                    await self._notifications.insert_many(fresh, ordered=True)
        except DuplicateKeyError as exc:
            if ids is None:
                raise
            # Another try of the same request is writing these very records (its claim
            # was taken over): they are its to finish; a later retry finds them stored.
            raise StoreUnavailable("another try of this request is storing it") from exc
        except BaseException:
            await self._remove_partial([doc["_id"] for doc in fresh])
            raise
        revs: dict[str, int] = {}
        for user_id in dict.fromkeys(user_id for user_id, _ in items):
            revs[user_id] = await self.bump_rev(user_id)
        return [
            Created(
                id=str(doc["_id"]),
                created_at=stored.get(doc["_id"], now),
                rev=revs[doc["user_id"]],
            )
            for doc in docs
        ]

    async def _stored_dates(self, ids: list[ObjectId]) -> dict[ObjectId, datetime]:
        """The creation dates of those of ``ids`` that are stored already."""
        with _unavailable_on_outage():
            return {
                doc["_id"]: _utc(doc["creation_date"])
                async for doc in self._notifications.find(
                    {"_id": {"$in": ids}}, projection={"creation_date": 1}
                )
            }

    async def _remove_partial(self, ids: list[ObjectId]) -> None:
        try:
            with _unavailable_on_outage():
                await self._notifications.delete_many({"_id": {"$in": ids}})
        except (StoreUnavailable, PyMongoError):
            # Unseen, never announced, rev not raised: clients see them at the
            # next change of this user. Say so loudly.
            logger.error("could not remove %d records of a failed batch insert", len(ids))

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
        oids = list({form for value in ids for form in _id_forms(value)})
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
        forms = _id_forms(notification_id)
        if not forms:
            return None
        with _unavailable_on_outage():
            doc = await self._notifications.find_one({"_id": {"$in": forms}})
        return None if doc is None else _notification(doc)

    async def purge_seen(self, before: datetime) -> int:
        with _unavailable_on_outage():
            result = await self._notifications.delete_many(
                {"seen_date": {"$ne": None, "$lt": before}}
            )
        return result.deleted_count

    async def claim_key(self, key: str, fingerprint: str) -> Claim:
        now = _now()
        with _unavailable_on_outage():
            try:
                await self._keys.insert_one(
                    {"_id": key, "fingerprint": fingerprint, "response": None, "created_at": now}
                )
                return Claim("new")
            except DuplicateKeyError:
                doc = await self._keys.find_one({"_id": key})
            if doc is None:  # expired between the two calls
                return await self.claim_key(key, fingerprint)
            age = now - _utc(doc["created_at"])
            expired = age > IDEMPOTENCY_TTL
            abandoned = doc.get("response") is None and age > IDEMPOTENCY_ABANDONED
            if not expired and doc["fingerprint"] != fingerprint:
                return Claim("mismatch")
            if not expired and doc.get("response") is not None:
                return Claim("done", dict(doc["response"]))
            if expired or abandoned:
                # Take it over only if nobody else did in the meantime.
                replaced = await self._keys.find_one_and_replace(
                    {"_id": key, "created_at": doc["created_at"]},
                    {"fingerprint": fingerprint, "response": None, "created_at": now},
                )
                return Claim("new") if replaced is not None else Claim("pending")
            return Claim("pending")

    async def complete_key(self, key: str, response: JSONObject) -> None:
        with _unavailable_on_outage():
            await self._keys.update_one({"_id": key}, {"$set": {"response": response}})

    async def release_key(self, key: str) -> None:
        with _unavailable_on_outage():
            await self._keys.delete_one({"_id": key, "response": None})

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
