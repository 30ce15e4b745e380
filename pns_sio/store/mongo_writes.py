"""Writes to MongoDB in one transaction where the deployment has them.

Replica sets and sharded clusters run a write, the user's rev and the kept count in
one transaction. A standalone server refuses transactions (found at the first write,
then remembered): the writes then go in the order the protocol's rev rule needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure

from .mongo_docs import unavailable_on_outage

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What a standalone server answers a transaction with ("Transaction numbers are only
# allowed on a replica set member or mongos").
ILLEGAL_OPERATION = 20
WRITE_CONFLICT = 112
CONFLICT_RETRIES = 20  # transactions on one user at once: each retry backs off (random)
CONFLICT_RETRY_DELAY = 0.005


def _is_write_conflict(exc: OperationFailure) -> bool:
    return exc.code == WRITE_CONFLICT or "write conflict" in str(exc).lower()


class Writes:
    """Runs a store's writes: in transactions when the server has them, else in order."""

    def __init__(self, client: AsyncMongoClient[Any], *, transactions: bool = True) -> None:
        self._client = client
        # None until the first write tells; False on a standalone server.
        self._transactions: bool | None = None if transactions else False
        # A lock per user with a write in flight here; gone with the last holder.
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def write(
        self, users: list[str], work: Callable[[AsyncClientSession | None], Awaitable[T]]
    ) -> T:
        """Run ``work`` (a write that changes ``users``' unseen sets) in one transaction
        where the deployment has them (replica sets, sharded clusters), else without one
        (``work(None)``): a standalone server refuses transactions, and the writes then
        go in the order the protocol's rev rule needs (the change first, the rev after).

        Transactions on one user from this process take turns (a lock per user, taken
        in a fixed order): two at once would only conflict on the user's document and
        one would start again. Other processes' conflicts are retried.
        """
        async with contextlib.AsyncExitStack() as turns:
            if self._transactions is not False:
                for user_id in sorted(set(users)):
                    await turns.enter_async_context(self._turn(user_id))
            return await self._write_now(work)

    def _turn(self, user_id: str) -> asyncio.Lock:
        lock = self._turns.get(user_id)
        if lock is None:
            lock = self._turns[user_id] = asyncio.Lock()
        return lock

    async def _write_now(self, work: Callable[[AsyncClientSession | None], Awaitable[T]]) -> T:
        with unavailable_on_outage():
            if self._transactions is not False:
                try:
                    result = await self._transaction(work)
                    self._transactions = True
                    return result
                except OperationFailure as exc:
                    if self._transactions or exc.code != ILLEGAL_OPERATION:
                        raise
                    self._transactions = False
                    logger.info(
                        "MongoDB refuses transactions (a standalone server): writes go in "
                        "order instead, and counts are taken at each read"
                    )
            return await work(None)

    async def _transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """``work`` in a transaction, tried again after a write conflict (two writes to
        one user at once). PyMongo's ``with_transaction`` retries the conflicts a
        server labels TransientTransactionError; one that is not labelled (some
        servers and stand-ins) is retried here, a bounded number of times."""
        delay = CONFLICT_RETRY_DELAY
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                async with self._client.start_session() as session:
                    return await session.with_transaction(work)
            except OperationFailure as exc:
                if attempt == CONFLICT_RETRIES or not _is_write_conflict(exc):
                    raise
            await asyncio.sleep(delay * random.random())
            delay = min(delay * 2, 0.1)
        raise AssertionError("unreachable")
