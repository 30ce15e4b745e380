"""The notification store: one protocol, a backend per database.

Nothing here knows Socket.IO or aiohttp. Backends translate their driver's
errors into ``StoreUnavailable`` at this boundary.

The rule every backend keeps (docs/protocol.md, ``rev``): a write that changes
a user's unseen set raises that user's ``rev`` after the write commits, and
``unseen()`` reads ``rev`` before it counts. Then a count sent with the highest
``rev`` is never older than the last change, whichever node computed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from ..errors import SettingsError
from ..settings import redact_url

# A notification's data is an opaque JSON object owned by the application.
JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    """One record. ``problem`` is set (and ``data`` empty) for a record PNS cannot
    deliver: data that is not a JSON object or does not encode, a missing or unreadable
    field (an application's own insert of another shape). Stores return such records
    rather than fail the whole page, so one of them never blocks an inbox."""

    id: str
    user_id: str
    data: JSONObject
    created_at: datetime
    seen_at: datetime | None = None
    problem: str | None = None


def undeliverable(notification_id: str, user_id: str, problem: str) -> Notification:
    """The stand-in for a record that cannot be delivered (see ``Notification``)."""
    return Notification(
        id=notification_id,
        user_id=user_id,
        data={},
        created_at=datetime.min.replace(tzinfo=UTC),
        problem=problem,
    )


@dataclass(frozen=True, slots=True)
class Created:
    """A new record; ``count`` is the user's unseen count as of ``rev`` when the
    backend read it in the same transaction (else None: ask ``unseen``)."""

    id: str
    created_at: datetime
    rev: int
    count: int | None = None


@dataclass(frozen=True, slots=True)
class UnseenCount:
    count: int
    rev: int


ClaimState = Literal["new", "done", "mismatch", "pending"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a store knows of an idempotency key.

    ``state``: ``new`` (claimed now, for this request), ``done`` (answered
    before: ``response`` holds the answer), ``mismatch`` (used before with
    another request body), ``pending`` (another request holds it right now).
    """

    state: ClaimState
    response: JSONObject | None = None


# Idempotency keys are kept this long (the HTTP API's promise).
IDEMPOTENCY_TTL = timedelta(hours=24)
# A claim older than this whose request never finished (its node died) may be
# taken over by a retry.
IDEMPOTENCY_ABANDONED = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Marked:
    """How many notifications one ``mark_seen`` call changed, and the rev after it;
    ``count``: the unseen count of that rev when read in the same transaction."""

    changed: int
    rev: int
    count: int | None = None


class NotificationStore(Protocol):
    """Where notifications and per-user revisions live; the source of truth.

    Every method raises ``StoreUnavailable`` when the database cannot be
    reached; no method leaves a partial write behind that a retry would
    duplicate, except ``create`` (a retry creates a second record).
    """

    async def create(self, user_id: str, data: JSONObject) -> Created:
        """Insert an unseen notification, then raise the user's rev."""
        ...

    async def create_many(
        self, items: list[tuple[str, JSONObject]], *, ids: list[str] | None = None
    ) -> list[Created]:
        """Insert ``(user_id, data)`` records all or nothing, then raise each user's rev.

        On ``StoreUnavailable`` none of the records is kept (a backend without
        transactions removes what it wrote before raising). ``ids`` (24 hex digits
        each, one per item) are the records' ids when the caller chose them (derived
        from an idempotency key): a record whose id is stored already is not written
        again and comes back with its stored ``created_at``, so a retry of a write
        whose outcome was never known creates nothing twice.
        """
        ...

    async def unseen(self, user_id: str) -> UnseenCount:
        """The user's rev (read first) and unseen count (counted after)."""
        ...

    async def list_unseen(self, user_id: str, limit: int) -> list[Notification]:
        """Up to ``limit`` unseen notifications of the user, oldest first."""
        ...

    async def mark_seen(self, user_id: str, ids: list[str]) -> Marked:
        """Set ``seen_date`` on those of ``ids`` still unseen and owned by the user.

        Concurrent calls for the same ids count each notification once in
        total. Raises rev only when something changed; ids that are unknown,
        malformed, seen, or another user's are ignored.
        """
        ...

    async def bump_rev(self, user_id: str) -> int:
        """Raise the user's rev (after a write made outside this store) and return it."""
        ...

    async def get(self, notification_id: str) -> Notification | None:
        """One notification by id, or None (also for a malformed id)."""
        ...

    async def purge_seen(self, before: datetime) -> int:
        """Delete notifications seen before ``before``; unseen ones are never deleted."""
        ...

    async def claim_key(self, key: str, fingerprint: str) -> Claim:
        """Claim an idempotency ``key`` for a request whose body hashes to ``fingerprint``."""
        ...

    async def complete_key(self, key: str, response: JSONObject) -> None:
        """Record the answer of the request that claimed ``key``."""
        ...

    async def release_key(self, key: str) -> None:
        """Forget a claim whose request failed, so a retry can run it again."""
        ...

    async def ping(self) -> None:
        """Return when the database answers; raise ``StoreUnavailable`` otherwise."""
        ...

    async def close(self) -> None: ...


async def open_store(
    url: str, *, timeout: float = 5.0, retention: timedelta | None = None
) -> NotificationStore:
    """Open (and prepare: tables, indexes) the store named by ``url``.

    ``timeout`` bounds how long the driver waits for the database on each
    call. ``retention``: how long seen notifications are kept, for a backend
    that expires them itself (MongoDB's TTL index); others are purged by the
    node (``purge_seen``). Raises ``SettingsError`` for a URL no backend
    understands.
    """
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        return await SQLiteStore.open(url, timeout=timeout)
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from .mongo import MongoStore

        return await MongoStore.open(url, timeout=timeout, retention=retention)
    raise SettingsError(
        f"PNS_STORE_URL={redact_url(url)!r}: expected sqlite:///path.db, mongodb:// or "
        "mongodb+srv://"
    )
