"""Each user's rev and kept unseen count on MongoDB (collection ``pns_users``).

A document ``{_id: user_id, user_id, rev, unseen, unseen_rev}``: ``unseen`` is the
user's unseen count as of rev ``unseen_rev``. Inside a transaction (replica sets,
sharded clusters) a write raises ``rev`` and moves ``unseen`` by what it changed, in
the transaction of the write itself, so a create or a mark costs the same at any
backlog and the count read with the rev is exact. Without transactions (a standalone
server) a write only increments ``rev`` after it lands: ``unseen_rev`` falls behind
and readers count again, which is always right, only slower. Any writer that raises
``rev`` without keeping the count (another program that keeps only docs/protocol.md's
``pns_users`` (user_id, rev)) works the same way.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from . import UnseenCount

Document = dict[str, Any]


class UserRevs:
    def __init__(
        self, users: AsyncCollection[Document], notifications: AsyncCollection[Document]
    ) -> None:
        self._users = users
        self._notifications = notifications

    async def read(self, user_id: str) -> UnseenCount:
        """The rev and the unseen count of that rev: kept, or counted (rev read first,
        so a change racing the count raises the rev past the one returned)."""
        doc = await self._users.find_one(
            {"_id": user_id}, projection={"rev": 1, "unseen": 1, "unseen_rev": 1}
        )
        rev = 0 if doc is None else int(doc["rev"])
        kept = _kept(doc, 0)
        if kept is not None:
            return UnseenCount(count=kept, rev=rev)
        return UnseenCount(count=await self._count(user_id, None), rev=rev)

    async def read_rev(self, user_id: str) -> int:
        doc = await self._users.find_one({"_id": user_id}, projection={"rev": 1})
        return 0 if doc is None else int(doc["rev"])

    async def bump(self, user_id: str) -> int:
        """Raise the rev after a write that landed without a transaction; the kept count
        is left behind (``unseen_rev`` < ``rev``), so the next reader counts again."""
        try:
            doc = await self._increment(user_id)
        except DuplicateKeyError:
            # Two first bumps of a user raced to upsert the same _id; the loser's
            # retry finds the winner's document and increments it.
            doc = await self._increment(user_id)
        return int(doc["rev"])

    async def bump_counted(
        self, user_id: str, delta: int | None, session: AsyncClientSession
    ) -> tuple[int, int]:
        """In the write's own transaction: raise the rev and move the kept count by
        ``delta`` (None: the change is unknown, count again); the new (rev, count).

        A kept count that is behind, or would go below zero, is counted again. Two
        transactions on one user conflict on this document and one is retried.
        """
        doc = await self._users.find_one({"_id": user_id}, session=session)
        rev = 0 if doc is None else int(doc["rev"])
        count = None if delta is None else _kept(doc, delta)
        if count is None:
            count = await self._count(user_id, session)
        await self._users.update_one(
            {"_id": user_id},
            {"$set": {"user_id": user_id, "rev": rev + 1, "unseen": count, "unseen_rev": rev + 1}},
            upsert=True,
            session=session,
        )
        return rev + 1, count

    async def _count(self, user_id: str, session: AsyncClientSession | None) -> int:
        return await self._notifications.count_documents(
            {"user_id": user_id, "seen_date": None}, session=session
        )

    async def _increment(self, user_id: str) -> Document:
        doc = await self._users.find_one_and_update(
            {"_id": user_id},
            {"$inc": {"rev": 1}, "$setOnInsert": {"user_id": user_id}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # cannot happen with upsert=True and AFTER
            raise RuntimeError(f"rev upsert returned nothing for user {user_id!r}")
        return doc


def _kept(doc: Document | None, delta: int) -> int | None:
    """The kept count moved by ``delta``, or None when it must be counted again."""
    if doc is None:
        return None
    unseen, unseen_rev = doc.get("unseen"), doc.get("unseen_rev")
    if not isinstance(unseen, int) or unseen_rev != doc.get("rev") or unseen + delta < 0:
        return None
    return unseen + delta
