"""The PNS exception tree and its one table of answers.

Each class carries its wire code (docs/protocol.md) and its HTTP status; the
socket answer (``error_payload``: ``{"ok": false, "error": {...}}``) and the HTTP
answer (``http_error``: status, ``{"error": {...}}``, headers) are both derived
from the exception, here and nowhere else. Codes are the constants below.
"""

from __future__ import annotations

import logging
from typing import Any, Final

logger = logging.getLogger(__name__)

# Wire codes: error answers, connection refusals (``data.code``) and ``pns:disconnect``.
INVALID_REQUEST: Final = "invalid_request"
UNAUTHORIZED: Final = "unauthorized"
RATE_LIMITED: Final = "rate_limited"
UNAVAILABLE: Final = "unavailable"
TIMEOUT: Final = "timeout"
INTERNAL: Final = "internal"
NOT_FOUND: Final = "not_found"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
TOO_LARGE: Final = "too_large"
UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"
IDEMPOTENCY_KEY_REUSED: Final = "idempotency_key_reused"
IDEMPOTENCY_KEY_IN_PROGRESS: Final = "idempotency_key_in_progress"
HTTP_ERROR: Final = "http_error"
# pns:disconnect only: why the node closes a connection.
SHUTDOWN: Final = "shutdown"
TOKEN_EXPIRED: Final = "token_expired"


class PNSError(Exception):
    """Root of every error PNS raises on purpose."""

    code: str = INTERNAL
    http_status: int = 500

    def __init__(self, message: str = "internal error") -> None:
        super().__init__(message)
        self.message = message

    def http_headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(PNSError):
    """A payload failed validation; ``fields`` maps field name to reasons."""

    code = INVALID_REQUEST
    http_status = 400

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class Unauthorized(PNSError):
    code = UNAUTHORIZED
    http_status = 401

    def __init__(self, message: str = "unauthorized") -> None:
        super().__init__(message)


class RateLimited(PNSError):
    """Too many requests; ``retry_after`` (seconds) goes out as HTTP's ``Retry-After``."""

    code = RATE_LIMITED
    http_status = 429

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def http_headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class NotFound(PNSError):
    code = NOT_FOUND
    http_status = 404


class TooLarge(PNSError):
    code = TOO_LARGE
    http_status = 413


class UnsupportedMediaType(PNSError):
    code = UNSUPPORTED_MEDIA_TYPE
    http_status = 415


class IdempotencyKeyInProgress(PNSError):
    code = IDEMPOTENCY_KEY_IN_PROGRESS
    http_status = 409


class IdempotencyKeyReused(PNSError):
    code = IDEMPOTENCY_KEY_REUSED
    http_status = 422


class StoreUnavailable(PNSError):
    """The store did not answer (down, locked, or slower than the store timeout)."""

    code = UNAVAILABLE
    http_status = 503

    def __init__(self, message: str = "the notification store is unavailable") -> None:
        super().__init__(message)


class NodeStopping(PNSError):
    """The node is shutting down; the client should go to another node."""

    code = UNAVAILABLE
    http_status = 503

    def __init__(self, message: str = "this node is stopping: reconnect to another") -> None:
        super().__init__(message)


class AuthUnavailable(PNSError):
    """The application's auth endpoint could not be asked; the client may retry."""

    code = UNAVAILABLE
    http_status = 503

    def __init__(self, message: str = "authentication is unavailable, retry later") -> None:
        super().__init__(message)


class NotAnnounced(PNSError):
    """Records were stored, but the signal that tells the nodes could not be published.

    ``notification_ids`` are stored and unseen; the devices of their users learn of
    them at the next change of those users or when ``announce()`` is called again.
    """

    code = UNAVAILABLE
    http_status = 503

    def __init__(self, notification_ids: list[str], reason: str) -> None:
        shown = ", ".join(notification_ids[:3])
        if len(notification_ids) > 3:
            shown += f" and {len(notification_ids) - 3} more"
        stored = f"stored as {shown} but" if notification_ids else "stored,"
        super().__init__(
            f"{stored} not announced ({reason}): call announce() again once Redis answers"
        )
        self.notification_ids = notification_ids
        self.reason = reason


class AckTimeout(PNSError):
    code = TIMEOUT
    http_status = 504

    def __init__(self, message: str = "the batch was not acknowledged in time") -> None:
        super().__init__(message)


class SettingsError(PNSError):
    """A configuration value is missing or wrong; the message names the variable.
    Never an answer to a client: it stops start-up (or a publisher's construction)."""


def _known(exc: BaseException) -> PNSError:
    if isinstance(exc, PNSError) and not isinstance(exc, SettingsError):
        return exc
    logger.error("unexpected error", exc_info=exc)
    return PNSError()


def error_body(exc: PNSError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, InvalidRequest) and exc.fields:
        body["fields"] = exc.fields
    return body


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The socket answer: ``{"ok": false, "error": {"code", "message"}}``; an exception
    PNS did not raise on purpose is logged and answers ``internal``."""
    known = _known(exc)
    return {"ok": False, "error": {"code": known.code, "message": known.message}}


def http_error(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The HTTP answer: (status, ``{"error": {"code", "message", "fields"?}}``, headers)."""
    known = _known(exc)
    return known.http_status, {"error": error_body(known)}, known.http_headers()
