"""The store a node holds before start-up has opened the real one."""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from ..errors import StoreUnavailable
from . import Claim, Created, JSONObject, Marked, Notification, UnseenCount


def _not_open() -> NoReturn:
    raise StoreUnavailable("the notification store is not open yet")


class UnopenedStore:
    """Answers every call with ``StoreUnavailable``."""

    async def create(self, user_id: str, data: JSONObject) -> Created:
        _not_open()

    async def create_many(
        self, items: list[tuple[str, JSONObject]], *, ids: list[str] | None = None
    ) -> list[Created]:
        _not_open()

    async def unseen(self, user_id: str) -> UnseenCount:
        _not_open()

    async def list_unseen(self, user_id: str, limit: int) -> list[Notification]:
        _not_open()

    async def mark_seen(self, user_id: str, ids: list[str]) -> Marked:
        _not_open()

    async def bump_rev(self, user_id: str) -> int:
        _not_open()

    async def get(self, notification_id: str) -> Notification | None:
        _not_open()

    async def purge_seen(self, before: datetime) -> int:
        _not_open()

    async def claim_key(self, key: str, fingerprint: str) -> Claim:
        _not_open()

    async def complete_key(self, key: str, response: JSONObject) -> None:
        _not_open()

    async def release_key(self, key: str) -> None:
        _not_open()

    async def ping(self) -> None:
        _not_open()

    async def close(self) -> None:
        return None
