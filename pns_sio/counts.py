"""Unseen counts: computing them and pushing them to a user's devices.

One refresh per user runs at a time; requests that arrive meanwhile fold into
one more run, so a burst of notifications for one user costs two store
queries, not one per notification. A refresh waits out a store outage (with a
capped back-off) and sends the count as soon as the store answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from .errors import StoreUnavailable
from .store import NotificationStore, UnseenCount
from .tasks import TaskOwner
from .wire import EV_COUNT, NAMESPACE, Emit, user_room

logger = logging.getLogger(__name__)

RETRY_MIN_DELAY = 0.1
RETRY_MAX_DELAY = 2.0


def count_payload(unseen: UnseenCount) -> dict[str, int]:
    return {"count": unseen.count, "rev": unseen.rev}


class CountService:
    """Computes a user's (count, rev) and emits it, coalescing bursts per user."""

    def __init__(
        self,
        store: NotificationStore,
        *,
        emit: Emit,
        has_user: Callable[[str], bool],
        tasks: TaskOwner,
        on_sent: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._emit = emit
        self._has_user = has_user
        self._tasks = tasks
        self._on_sent = on_sent
        self._wanted: dict[str, bool] = {}  # user -> everywhere?
        self._running: set[str] = set()
        # user -> called once a count went to the user's devices here (directly)
        self._then: dict[str, list[Callable[[], None]]] = {}

    def refresh(
        self, user_id: str, *, everywhere: bool = False, then: Callable[[], None] | None = None
    ) -> None:
        """Send the user's true count soon: to this node's devices, or to every node's.

        A local refresh of a user with no connection here does no store work.
        ``then`` is called once a count was written to the user's devices here; not
        at all if the run ends otherwise (a store outage outlived, a send through Redis).
        """
        if then is not None:
            self._then.setdefault(user_id, []).append(then)
        self._wanted[user_id] = self._wanted.get(user_id, False) or everywhere
        if user_id not in self._running:
            self._running.add(user_id)
            self._tasks.spawn(self._run(user_id), name=f"count-refresh:{user_id}")

    def forward(self, user_id: str, unseen: UnseenCount) -> None:
        """Send a count another process read (with its rev) to this node's devices: no
        store work. A stale one loses to any higher rev the devices already have."""
        self._tasks.spawn(self._send(user_id, unseen, everywhere=False), name="count-forward")

    def refresh_many(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            self.refresh(user_id)

    async def push_everywhere(self, user_id: str, known: UnseenCount | None = None) -> None:
        """Send the count to every node's devices now: ``known`` when the caller read it
        with its rev, else asked now. On a store outage keep trying in the background
        (the change is already committed, so the count must follow)."""
        if known is not None:
            await self._send(user_id, known, everywhere=True)
            return
        if user_id in self._running:
            self.refresh(user_id, everywhere=True)
            return
        try:
            unseen = await self._store.unseen(user_id)
        except StoreUnavailable:
            self.refresh(user_id, everywhere=True)
            return
        await self._send(user_id, unseen, everywhere=True)

    async def send_to(self, user_id: str, sid: str) -> None:
        """The user's count to one connection now, read now. Raises StoreUnavailable."""
        unseen = await self._store.unseen(user_id)
        # A connection's sid is a room of its own; ignore_queue: it is on this node.
        await self._emit(EV_COUNT, count_payload(unseen), NAMESPACE, room=sid, ignore_queue=True)
        self._on_sent()

    async def _send(self, user_id: str, unseen: UnseenCount, *, everywhere: bool) -> bool:
        try:
            # ignore_queue: this node's connections only, not through Redis to every node's.
            await self._emit(
                EV_COUNT,
                count_payload(unseen),
                NAMESPACE,
                room=user_room(user_id),
                ignore_queue=not everywhere,
            )
        except Exception:
            logger.exception("could not emit a count")
            return False
        self._on_sent()
        return True

    async def _run(self, user_id: str) -> None:
        delay = RETRY_MIN_DELAY
        try:
            while user_id in self._wanted:
                everywhere = self._wanted.pop(user_id)
                if not everywhere and not self._has_user(user_id):
                    continue
                try:
                    unseen = await self._store.unseen(user_id)
                except StoreUnavailable:
                    self._wanted[user_id] = self._wanted.get(user_id, False) or everywhere
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                    continue
                delay = RETRY_MIN_DELAY
                sent = await self._send(user_id, unseen, everywhere=everywhere)
                # Only a direct send is known to be on the sockets now; through
                # Redis it comes back later.
                if sent and not everywhere:
                    for then in self._then.pop(user_id, ()):
                        then()
        finally:
            self._running.discard(user_id)
            self._then.pop(user_id, None)
