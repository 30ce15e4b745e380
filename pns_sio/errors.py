"""The PNS exception tree: one root, each subclass carrying its wire code.

Wire codes are exactly those of docs/protocol.md. ``error_payload`` is the one
place that turns an exception into the protocol's ``{"ok": false, ...}``.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


class PNSError(Exception):
    """Root of every error PNS raises on purpose."""

    code = "internal"

    def __init__(self, message: str = "internal error") -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(PNSError):
    """A payload failed validation; ``fields`` maps field name to reasons."""

    code = "invalid_request"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class Unauthorized(PNSError):
    code = "unauthorized"

    def __init__(self, message: str = "unauthorized") -> None:
        super().__init__(message)


class RateLimited(PNSError):
    code = "rate_limited"


class StoreUnavailable(PNSError):
    """The store did not answer (down, locked, or slower than the store timeout)."""

    code = "unavailable"

    def __init__(self, message: str = "the notification store is unavailable") -> None:
        super().__init__(message)


class NodeStopping(PNSError):
    """The node is shutting down; the client should go to another node."""

    code = "unavailable"

    def __init__(self, message: str = "this node is stopping: reconnect to another") -> None:
        super().__init__(message)


class AuthUnavailable(PNSError):
    """The application's auth endpoint could not be asked; the client may retry."""

    code = "unavailable"

    def __init__(self, message: str = "authentication is unavailable, retry later") -> None:
        super().__init__(message)


class NotAnnounced(PNSError):
    """Records were stored, but the signal that tells the nodes could not be published.

    ``notification_ids`` are stored and unseen; the devices of their users learn of
    them at the next change of those users or when ``announce()`` is called again.
    """

    code = "unavailable"

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
    code = "timeout"

    def __init__(self, message: str = "the batch was not acknowledged in time") -> None:
        super().__init__(message)


class SettingsError(PNSError):
    """A configuration value is missing or wrong; the message names the variable."""

    code = "internal"


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Map an exception to the protocol's error answer; unknown ones become ``internal``."""
    if isinstance(exc, PNSError) and not isinstance(exc, SettingsError):
        return {"ok": False, "error": {"code": exc.code, "message": exc.message}}
    logger.error("unexpected error", exc_info=exc)
    return {"ok": False, "error": {"code": "internal", "message": "internal error"}}
