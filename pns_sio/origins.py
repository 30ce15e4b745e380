"""Which browser origins may connect: what python-engineio's ``cors_allowed_origins`` gets."""

from __future__ import annotations

from typing import Any

from .settings import Settings, normalize_origin


def origin_policy(settings: Settings) -> Any:
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
        origin = normalize_origin(origin)
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
