"""A store wrapper that bounds every call by the store timeout and reports each call.

A database that hangs is as bad as one that is down: after ``timeout``
seconds the caller gets ``StoreUnavailable`` and answers ``unavailable``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from ..errors import StoreUnavailable
from ..tasks import Rest
from . import (
    Claim,
    Created,
    JSONObject,
    Marked,
    Notification,
    NotificationStore,
    UnseenCount,
)
from .unopened import UnopenedStore

T = TypeVar("T")

# The backends give up after their own timeout (cleanly, nothing written); the guard,
# this much later, is the backstop for a driver that hangs anyway.
GUARD_MARGIN_SECONDS = 1.0

# The retention purge is background work done in short transactions (SQLite walks the
# table in windows); it may take longer than a request's store call without harm.
PURGE_TIMEOUT = 300.0


def _ignore(op: str, ok: bool, seconds: float) -> None:
    """Default report hook."""


class GuardedStore:
    """``NotificationStore`` that times out and reports ``(op, ok)`` for each call."""

    def __init__(
        self,
        inner: NotificationStore | None = None,
        *,
        timeout: float,
        report: Callable[[str, bool, float], None] = _ignore,
        opener: Callable[[], Awaitable[NotificationStore]] | None = None,
    ) -> None:
        """Wraps ``inner``, or the store ``opener`` opens at ``open()``: until then every
        call answers ``StoreUnavailable`` (a node's routes exist before its store is open)."""
        self.inner: NotificationStore = inner if inner is not None else UnopenedStore()
        self.timeout = timeout
        self.report = report
        self._opener = opener

    async def open(self) -> None:
        """Open the store with the ``opener`` given at construction; once."""
        if self._opener is not None and isinstance(self.inner, UnopenedStore):
            self.inner = await self._opener()

    @property
    def expires_itself(self) -> bool:
        """True when the backend deletes seen notifications itself (MongoDB's TTL index)."""
        return bool(getattr(self.inner, "EXPIRES_ITSELF", False))

    async def _call(self, op: str, call: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        started = time.perf_counter()
        limit = self.timeout if timeout is None else timeout
        try:
            result = await _bounded(call, limit)
        except TimeoutError:
            self.report(op, False, time.perf_counter() - started)
            raise StoreUnavailable(
                f"the notification store did not answer within {limit:g}s"
            ) from None
        except StoreUnavailable:
            self.report(op, False, time.perf_counter() - started)
            raise
        self.report(op, True, time.perf_counter() - started)
        return result

    async def create(self, user_id: str, data: JSONObject) -> Created:
        return await self._call("create", self.inner.create(user_id, data))

    async def create_many(
        self, items: list[tuple[str, JSONObject]], *, ids: list[str] | None = None
    ) -> list[Created]:
        return await self._call("create_many", self.inner.create_many(items, ids=ids))

    async def unseen(self, user_id: str) -> UnseenCount:
        return await self._call("unseen", self.inner.unseen(user_id))

    async def list_unseen(self, user_id: str, limit: int) -> list[Notification]:
        return await self._call("list_unseen", self.inner.list_unseen(user_id, limit))

    async def mark_seen(self, user_id: str, ids: list[str]) -> Marked:
        return await self._call("mark_seen", self.inner.mark_seen(user_id, ids))

    async def bump_rev(self, user_id: str) -> int:
        return await self._call("bump_rev", self.inner.bump_rev(user_id))

    async def get(self, notification_id: str) -> Notification | None:
        return await self._call("get", self.inner.get(notification_id))

    async def purge_seen(self, before: datetime) -> int:
        timeout = max(self.timeout, PURGE_TIMEOUT)
        return await self._call("purge_seen", self.inner.purge_seen(before), timeout)

    async def claim_key(self, key: str, fingerprint: str) -> Claim:
        return await self._call("claim_key", self.inner.claim_key(key, fingerprint))

    async def complete_key(self, key: str, response: JSONObject) -> None:
        await self._call("complete_key", self.inner.complete_key(key, response))

    async def release_key(self, key: str) -> None:
        await self._call("release_key", self.inner.release_key(key))

    async def ping(self) -> None:
        await self._call("ping", self.inner.ping())

    async def close(self) -> None:
        await self.inner.close()


async def _bounded(call: Coroutine[Any, Any, T], limit: float) -> T:
    """``await call``, bounded by ``limit`` seconds from when it first waits.

    A call that finishes without waiting (SQLite's reads on the loop: most calls) arms
    no timer: ``asyncio.timeout``'s timer handle, set and cancelled around every call,
    was a twentieth of a notification's CPU."""
    try:
        waiting_on = call.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    async with asyncio.timeout(limit):
        return await Rest(call, waiting_on)
