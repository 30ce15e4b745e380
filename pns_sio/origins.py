"""Which browser origins may connect: what python-engineio's ``cors_allowed_origins`` gets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .quiet_log import QuietLog
from .settings import Settings, normalize_origin

logger = logging.getLogger(__name__)
_quiet = QuietLog(logger)
ORIGIN_VERDICT = "pns.origin_allowed"  # kept in the request's environ


def _ignore() -> None:
    """Default report hook."""


def origin_policy(settings: Settings, on_refused: Callable[[], None] = _ignore) -> Any:
    """``"*"`` in demo mode, else a callable.

    Never ``[]`` (python-engineio reads it as "check nothing"). A callable, so
    origins compare case-insensitively and without a trailing slash.
    """
    if settings.demo:
        return "*"
    allowed = settings.allowed_origins

    def is_allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return True  # not a browser: judged by its credentials alone
        # python-engineio asks again for the response's CORS headers: judged once.
        verdict = environ.get(ORIGIN_VERDICT)
        if verdict is not None:
            return bool(verdict)
        verdict = environ[ORIGIN_VERDICT] = _allowed(normalize_origin(origin), environ)
        if verdict:
            return True
        on_refused()
        # python-engineio answers 400 and the browser shows only a failed connection:
        # the node's log is where an operator finds why.
        _quiet.info(
            "refused a connection from origin %r: %s",
            origin[:200],
            "not in PNS_ALLOWED_ORIGINS"
            if allowed is not None
            else "not this node's own origin (set PNS_ALLOWED_ORIGINS to allow it)",
        )
        return False

    def _allowed(origin: str, environ: dict[str, Any]) -> bool:
        if allowed is not None:
            return origin in allowed
        # Same origin only: the origin this request was addressed to.
        host = environ.get("HTTP_HOST", "")
        scheme = environ.get("wsgi.url_scheme", "http")
        candidates = {normalize_origin(f"{scheme}://{host}")}
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST")
        forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO")
        if forwarded_host or forwarded_proto:
            f_scheme = (forwarded_proto or scheme).split(",")[0].strip()
            f_host = (forwarded_host or host).split(",")[0].strip()
            candidates.add(normalize_origin(f"{f_scheme}://{f_host}"))
        return origin in candidates

    return is_allowed
