"""Authentication with the application's own system, behind one protocol.

A node asks its ``Authenticator`` who a handshake belongs to. Each backend is a
small class in a module of its own: ``jwt``, ``session`` (Flask-compatible
signed cookie), ``forward`` (ask the application over HTTP) and ``demo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import SettingsError
from ..schemas import MAX_USER_ID_LENGTH
from ..settings import Settings


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection belongs to.

    ``expires_at`` (Unix seconds) is when the credentials stop being valid,
    if they say so (a JWT's ``exp``); None when they do not expire.
    """

    user_id: str
    device_id: str
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Handshake:
    """What a client presented when it opened its connection."""

    # Header names are lower case.
    headers: Mapping[str, str] = field(default_factory=dict)
    # The Socket.IO handshake's ``auth`` payload, as sent (any JSON value).
    auth: Any = None
    remote: str | None = None

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies of the handshake, parsed leniently: one malformed cookie
        (common in browsers carrying other sites' cookies) does not hide the rest."""
        raw = self.headers.get("cookie")
        if not raw:
            return {}
        jar: dict[str, str] = {}
        for part in raw.split(";"):
            name, sep, value = part.strip().partition("=")
            if not sep or not name:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            jar.setdefault(name.strip(), value)
        return jar

    @property
    def token(self) -> str | None:
        """The ``auth: {token: "..."}`` of the handshake, if it is a string."""
        if isinstance(self.auth, dict):
            token = self.auth.get("token")
            if isinstance(token, str) and token:
                return token
        return None


def user_id_of(value: object) -> str | None:
    """A claim or session value as a user id: a string with something in it, or an int
    as its decimal string (PROTOCOL: "an integer id is sent as its decimal string"), of
    at most ``MAX_USER_ID_LENGTH`` characters; else None. The same rule as the HTTP API's
    and the publishers' (``schemas.UserId``): a user who could connect under an id
    nothing can address would never hear of a notification."""
    if isinstance(value, bool):  # bool is an int subclass; True is not user "1"
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_USER_ID_LENGTH:
        return value
    return None


class Authenticator(Protocol):
    """Decides who a handshake belongs to.

    ``authenticate`` raises ``Unauthorized`` for missing or bad credentials,
    and ``AuthUnavailable`` when the answer cannot be had right now (the
    application's auth endpoint is down); it never raises anything else.
    """

    async def authenticate(self, handshake: Handshake) -> Identity: ...

    async def close(self) -> None: ...


def build_authenticator(settings: Settings) -> Authenticator:
    """The authenticator the settings name (``settings.auth_mode``).

    In demo mode it is wrapped in a ``DemoAuthenticator`` that accepts
    ``auth: {"user_id": ...}`` and hands every other handshake to it (or refuses
    it when no mode is configured). Raises ``SettingsError`` when neither demo
    mode nor an authentication mode is set.
    """
    real = _configured_authenticator(settings)
    if settings.demo:
        from .demo import DemoAuthenticator

        return DemoAuthenticator(fallback=real)
    if real is None:
        raise SettingsError("no authentication configured: set PNS_AUTH (or run with --demo)")
    return real


def _configured_authenticator(settings: Settings) -> Authenticator | None:
    mode = settings.auth_mode
    if mode == "jwt":
        from .jwt import JWTAuthenticator

        return JWTAuthenticator(settings)
    if mode == "session":
        from .session import SessionCookieAuthenticator

        return SessionCookieAuthenticator(settings)
    if mode == "forward":
        from .forward import ForwardAuthenticator

        return ForwardAuthenticator(settings)
    return None
