"""Creating notifications and announcing changes: one path for the HTTP API, the
Python publishers and the CLI.

The record is written first (the store raises the user's rev), then
``pns:notification`` goes to the user's room through a python-socketio manager:
a node's own (which also serves the node's devices) or an application's
write-only one. A node's manager never fails an emit (it queues, and re-publishes
the counts of what it lost once Redis answers); a publisher's raises
``NotAnnounced``, naming the records that stand unannounced.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import NotAnnounced
from .store import Created, JSONObject, NotificationStore
from .wire import EV_SIGNAL, NAMESPACE, Emit, signal_payload, user_room


def _ignore(created: int) -> None:
    """Default report hook."""


class Notifier:
    def __init__(
        self,
        store: NotificationStore,
        emit: Emit,
        *,
        on_created: Callable[[int], None] = _ignore,
    ) -> None:
        self._store = store
        self._emit = emit
        self._on_created = on_created

    async def create(self, user_id: str, data: JSONObject) -> Created:
        """Store one notification, then signal; ``StoreUnavailable`` leaves nothing behind."""
        return (await self.create_many([(user_id, data)]))[0]

    async def create_many(
        self, items: list[tuple[str, JSONObject]], *, ids: list[str] | None = None
    ) -> list[Created]:
        """Store notifications all or nothing, then signal each user once (with the
        count of its last record when the store read it). ``ids``: see the store's
        ``create_many`` (an idempotent request's)."""
        created = await self._store.create_many(items, ids=ids)
        self._on_created(len(created))
        last = {user_id: c for (user_id, _), c in zip(items, created, strict=True)}
        single = created[0].id if len(created) == 1 else None
        try:
            for user_id, c in last.items():
                await self.signal(user_id, single, c.count, c.rev)
        except NotAnnounced as exc:
            # Say which records: they stand, the caller decides when to announce them.
            raise NotAnnounced([c.id for c in created], exc.reason) from exc
        return created

    async def announce(self, user_id: str, notification_id: str | None) -> int:
        """Signal a change made to the store by someone else (an application's own insert,
        mark or delete): raise the user's rev first, since the unseen set changed."""
        rev = await self._store.bump_rev(user_id)
        try:
            await self.signal(user_id, notification_id)
        except NotAnnounced as exc:
            ids = [notification_id] if notification_id is not None else []
            raise NotAnnounced(ids, exc.reason) from exc
        return rev

    async def signal(
        self,
        user_id: str,
        notification_id: str | None,
        count: int | None = None,
        rev: int | None = None,
    ) -> None:
        payload = signal_payload(user_id, notification_id, count, rev)
        await self._emit(EV_SIGNAL, payload, NAMESPACE, room=user_room(user_id))
