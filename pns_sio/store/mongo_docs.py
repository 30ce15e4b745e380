"""MongoDB documents and the shapes PNS reads them as; driver errors as PNS's.

Driver errors that mean "the database did not answer" become ``StoreUnavailable``
here; nothing above ``store/`` imports pymongo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from .. import jsoncodec
from ..errors import StoreUnavailable
from . import Notification, undeliverable

Document = dict[str, Any]

# Server error codes that mean the server is unreachable, stepping down,
# shutting down or out of time (PyMongo's retryable-error set, plus
# MaxTimeMSExpired). Codes 13/18: it refuses our credentials, which to a
# caller is the same as down, and /readyz must say so.
_OUTAGE_CODES = frozenset({6, 7, 13, 18, 50, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602})


def is_outage(exc: PyMongoError) -> bool:
    if isinstance(exc, ConnectionFailure) or exc.timeout:
        return True
    if isinstance(exc, OperationFailure) and exc.code in _OUTAGE_CODES:
        return True
    return exc.has_error_label("RetryableWriteError")


@contextmanager
def unavailable_on_outage() -> Iterator[None]:
    """Turn an outage-like driver error into ``StoreUnavailable``; others pass unchanged."""
    try:
        yield
    except PyMongoError as exc:
        if is_outage(exc):
            raise StoreUnavailable() from exc
        raise


def now() -> datetime:
    # BSON datetimes keep milliseconds: truncate now, so that what create()
    # returns equals what get() and list_unseen() read back later.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def utc(value: datetime) -> datetime:
    # tz_aware=True gives bson's own UTC tzinfo; hand out the stdlib one.
    return value.astimezone(UTC)


def notification(doc: Mapping[str, Any]) -> Notification:
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
        created_at=utc(created),
        seen_at=utc(seen) if isinstance(seen, datetime) else None,
    )


def id_forms(value: object) -> list[Any]:
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
