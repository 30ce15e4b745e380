"""Fetch and acknowledge: at-least-once delivery of unseen notifications.

A batch is marked seen only after the device acknowledges it. No ack in
time, a disconnect, or a store failure: nothing is marked, and the same
notifications come again on the next request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import schemas
from .counts import CountService
from .store import Notification, NotificationStore, UnseenCount

logger = logging.getLogger(__name__)

# send(batch_payload) -> the acknowledgement's arguments; raises AckTimeout or ClientGone.
SendBatch = Callable[[dict[str, Any]], Awaitable[tuple[Any, ...]]]


class ClientGone(Exception):
    """The connection closed before it acknowledged; nobody is left to answer."""


PAGES_MAX = 3  # pages of undeliverable records one fetch sets aside before answering


def answer(delivered: int, has_more: bool) -> dict[str, Any]:
    return {"ok": True, "delivered": delivered, "has_more": has_more}


class Delivery:
    def __init__(
        self,
        store: NotificationStore,
        counts: CountService,
        *,
        on_seen: Callable[[int], None] = lambda n: None,
        on_undeliverable: Callable[[int], None] = lambda n: None,
    ) -> None:
        self._store = store
        self._counts = counts
        self._on_seen = on_seen
        self._on_undeliverable = on_undeliverable

    async def _page(self, user_id: str, limit: int) -> tuple[list[Notification], bool]:
        """Up to ``limit`` deliverable unseen notifications, and whether more wait.

        Undeliverable records met on the way are set aside first (``_set_aside``), so
        one of them never blocks the notifications behind it.
        """
        for _ in range(PAGES_MAX):
            # One more than asked tells whether more are waiting.
            found = await self._store.list_unseen(user_id, limit + 1)
            bad = [n for n in found if n.problem is not None]
            good = [n for n in found if n.problem is None]
            if bad:
                await self._set_aside(user_id, bad)
            if good or len(found) <= limit:
                return good[:limit], len(found) > limit
        return [], True

    async def _set_aside(self, user_id: str, bad: list[Notification]) -> None:
        """Mark undeliverable records seen: they leave the inbox and the count (the
        record stays in the store, seen, until retention deletes it), each logged once
        with its id and why, and counted."""
        for record in bad:
            logger.warning(
                "undeliverable notification %s set aside (marked seen): %s",
                record.id,
                record.problem,
            )
        marked = await self._store.mark_seen(user_id, [n.id for n in bad])
        self._on_undeliverable(len(bad))
        if marked.changed:
            known = None if marked.count is None else UnseenCount(marked.count, marked.rev)
            await self._counts.push_everywhere(user_id, known)

    async def fetch(self, user_id: str, limit: int, send: SendBatch) -> dict[str, Any]:
        """Deliver up to ``limit`` unseen notifications and mark what the device accepts.

        Raises ``StoreUnavailable`` (nothing changed), ``AckTimeout`` (nothing
        marked), ``InvalidRequest`` for a malformed acknowledgement (nothing
        marked) and ``ClientGone`` when the device disconnected first.
        """
        batch, has_more = await self._page(user_id, limit)
        if not batch:
            # PROTOCOL: never send an empty new-notifications.
            return answer(0, False)
        ack = await send(schemas.batch_payload(batch, has_more))
        accepted = schemas.accepted_ids(ack, [n.id for n in batch])
        if not accepted:
            return answer(0, has_more)
        # mark_seen skips what is already seen or not this user's, so a
        # duplicate ack or a racing device counts each notification once.
        marked = await self._store.mark_seen(user_id, accepted)
        if marked.changed:
            self._on_seen(marked.changed)
            known = None if marked.count is None else UnseenCount(marked.count, marked.rev)
            await self._counts.push_everywhere(user_id, known)
        return answer(marked.changed, has_more)
