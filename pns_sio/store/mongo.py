"""The MongoDB backend, on PyMongo's native async API (``AsyncMongoClient``).

Collections: ``notifications`` (the data model of docs/protocol.md), ``pns_users``
(each user's rev and kept unseen count: ``mongo_revs.py``) and ``pns_idempotency``.

Where the deployment has transactions (replica sets, sharded clusters) a write, the
user's rev and the kept count change in one transaction. A standalone server refuses
transactions (found at the first write, then remembered): the rev rule of
``store/__init__.py`` is then kept by ordering: every write to ``notifications`` that
changes a user's unseen set is followed by a bump of that user's rev, and ``unseen``
reads rev before it counts, so a count sent with rev R was taken after every change
that led to R. Writes wait for a majority unless the URL says otherwise.

Transactions and their fallback: ``mongo_writes.py``; documents and driver errors:
``mongo_docs.py``; nothing above ``store/`` imports pymongo.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pymongo
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConfigurationError,
    DuplicateKeyError,
    InvalidName,
    OperationFailure,
    PyMongoError,
)

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
)
from .mongo_docs import Document, id_forms, notification, now, unavailable_on_outage, utc
from .mongo_revs import UserRevs
from .mongo_writes import Writes

__all__ = ["MongoStore"]

logger = logging.getLogger(__name__)

Stored = dict[ObjectId, datetime]
Revs = dict[str, tuple[int, int | None]]

DEFAULT_DATABASE = "pns"
NOTIFICATIONS = "notifications"
USERS = "pns_users"
KEYS = "pns_idempotency"
# docs/protocol.md's index (user_id, seen_date, creation_date) is a prefix of this one,
# so it serves nothing this one does not; one an application made is left in place.
UNSEEN_INDEX = [("user_id", 1), ("seen_date", 1), ("creation_date", 1), ("_id", 1)]

# Building the index on a large existing collection can outlast the per-call
# timeout; give it this long. (Under pymongo.timeout() server selection waits
# as long too, so open() pings first to fail fast when the server is down.)
INDEX_BUILD_TIMEOUT = 120.0


class MongoStore:
    """``NotificationStore`` on MongoDB. Open with ``await MongoStore.open(url, timeout=...)``."""

    # A TTL index on seen_date deletes seen notifications past retention.
    EXPIRES_ITSELF = True

    def __init__(
        self,
        client: AsyncMongoClient[Document],
        db: AsyncDatabase[Document],
        *,
        transactions: bool = True,
    ) -> None:
        self._client = client
        self._db = db
        self._notifications: AsyncCollection[Document] = db[NOTIFICATIONS]
        self._users: AsyncCollection[Document] = db[USERS]
        self._keys: AsyncCollection[Document] = db[KEYS]
        self._revs = UserRevs(self._users, self._notifications)
        self._writes = Writes(client, transactions=transactions)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        timeout: float,
        retention: timedelta | None = None,
        transactions: bool = True,
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
        store = cls(client, db, transactions=transactions)
        try:
            await store.ping()
            with unavailable_on_outage(), pymongo.timeout(INDEX_BUILD_TIMEOUT):
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
        created_at = now()
        chosen = [ObjectId(i) for i in ids] if ids is not None else [ObjectId() for _ in items]
        docs: list[Document] = [
            {
                "_id": oid,
                "user_id": user_id,
                "notification_data": data,
                "creation_date": created_at,
                "seen_date": None,
            }
            for oid, (user_id, data) in zip(chosen, items, strict=True)
        ]
        users = list(dict.fromkeys(user_id for user_id, _ in items))

        async def write(session: AsyncClientSession | None) -> tuple[Stored, Revs]:
            stored = await self._stored_dates(chosen, session) if ids is not None else {}
            fresh = [doc for doc in docs if doc["_id"] not in stored]
            if session is not None:
                # One transaction: the records, every rev and every kept count, or none.
                if fresh:
                    await self._notifications.insert_many(fresh, ordered=True, session=session)
                added = Counter(doc["user_id"] for doc in fresh)
                counted = {u: await self._revs.bump_counted(u, added[u], session) for u in users}
                return stored, {u: (rev, count) for u, (rev, count) in counted.items()}
            await self._insert_in_order(fresh, chosen_by_caller=ids is not None)
            return stored, {u: (await self._revs.bump(u), None) for u in users}

        stored, revs = await self._writes.write(users, write)
        return [
            Created(
                id=str(doc["_id"]),
                created_at=stored.get(doc["_id"], created_at),
                rev=revs[doc["user_id"]][0],
                count=revs[doc["user_id"]][1],
            )
            for doc in docs
        ]

    async def _insert_in_order(self, fresh: list[Document], *, chosen_by_caller: bool) -> None:
        """Without a transaction: insert, removing what was written if the insert fails
        part-way (all or nothing, as far as the server lets us)."""
        try:
            if fresh:
                await self._notifications.insert_many(fresh, ordered=True)
        except DuplicateKeyError as exc:
            if not chosen_by_caller:
                raise
            # Another try of the same request is writing these very records (its claim
            # was taken over): they are its to finish; a later retry finds them stored.
            raise StoreUnavailable("another try of this request is storing it") from exc
        except BaseException:
            await self._remove_partial([doc["_id"] for doc in fresh])
            raise

    async def _stored_dates(
        self, ids: list[ObjectId], session: AsyncClientSession | None
    ) -> dict[ObjectId, datetime]:
        """The creation dates of those of ``ids`` that are stored already."""
        return {
            doc["_id"]: utc(doc["creation_date"])
            async for doc in self._notifications.find(
                {"_id": {"$in": ids}}, projection={"creation_date": 1}, session=session
            )
        }

    async def _remove_partial(self, ids: list[ObjectId]) -> None:
        try:
            with unavailable_on_outage():
                await self._notifications.delete_many({"_id": {"$in": ids}})
        except (StoreUnavailable, PyMongoError):
            # Unseen, never announced, rev not raised: clients see them at the
            # next change of this user. Say so loudly.
            logger.error("could not remove %d records of a failed batch insert", len(ids))

    async def unseen(self, user_id: str) -> UnseenCount:
        with unavailable_on_outage():
            return await self._revs.read(user_id)

    async def list_unseen(self, user_id: str, limit: int) -> list[Notification]:
        if limit <= 0:
            return []  # MongoDB reads limit(0) as "no limit"
        cursor = (
            self._notifications.find({"user_id": user_id, "seen_date": None})
            .sort([("creation_date", 1), ("_id", 1)])
            .limit(limit)
        )
        with unavailable_on_outage():
            return [notification(doc) async for doc in cursor]

    async def mark_seen(self, user_id: str, ids: list[str]) -> Marked:
        oids = list({form for value in ids for form in id_forms(value)})
        if not oids:
            with unavailable_on_outage():
                return Marked(changed=0, rev=await self._revs.read_rev(user_id))

        async def write(session: AsyncClientSession | None) -> Marked:
            # The filter re-checks seen_date in the same atomic per-document update, so
            # concurrent calls on the same ids count each one once.
            result = await self._notifications.update_many(
                {"_id": {"$in": oids}, "user_id": user_id, "seen_date": None},
                {"$set": {"seen_date": now()}},
                session=session,
            )
            changed = result.modified_count
            if not changed:
                return Marked(changed=0, rev=await self._revs.read_rev(user_id))
            if session is None:
                return Marked(changed=changed, rev=await self._revs.bump(user_id))
            rev, count = await self._revs.bump_counted(user_id, -changed, session)
            return Marked(changed=changed, rev=rev, count=count)

        return await self._writes.write([user_id], write)

    async def bump_rev(self, user_id: str) -> int:
        async def write(session: AsyncClientSession | None) -> int:
            if session is None:
                return await self._revs.bump(user_id)
            # An announced write may be anything the application did itself: count again.
            rev, _ = await self._revs.bump_counted(user_id, None, session)
            return rev

        return await self._writes.write([user_id], write)

    async def get(self, notification_id: str) -> Notification | None:
        forms = id_forms(notification_id)
        if not forms:
            return None
        with unavailable_on_outage():
            doc = await self._notifications.find_one({"_id": {"$in": forms}})
        return None if doc is None else notification(doc)

    async def purge_seen(self, before: datetime) -> int:
        with unavailable_on_outage():
            result = await self._notifications.delete_many(
                {"seen_date": {"$ne": None, "$lt": before}}
            )
        return result.deleted_count

    async def claim_key(self, key: str, fingerprint: str) -> Claim:
        moment = now()
        with unavailable_on_outage():
            try:
                await self._keys.insert_one(
                    {"_id": key, "fingerprint": fingerprint, "response": None, "created_at": moment}
                )
                return Claim("new")
            except DuplicateKeyError:
                doc = await self._keys.find_one({"_id": key})
            if doc is None:  # expired between the two calls
                return await self.claim_key(key, fingerprint)
            age = moment - utc(doc["created_at"])
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
                    {"fingerprint": fingerprint, "response": None, "created_at": moment},
                )
                return Claim("new") if replaced is not None else Claim("pending")
            return Claim("pending")

    async def complete_key(self, key: str, response: JSONObject) -> None:
        with unavailable_on_outage():
            await self._keys.update_one({"_id": key}, {"$set": {"response": response}})

    async def release_key(self, key: str) -> None:
        with unavailable_on_outage():
            await self._keys.delete_one({"_id": key, "response": None})

    async def ping(self) -> None:
        with unavailable_on_outage():
            await self._db.command("ping")

    async def close(self) -> None:
        await self._client.close()
