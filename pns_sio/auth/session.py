"""Flask session-cookie authentication: verify the app's signed cookie as Flask does.

Flask's default ``SecureCookieSessionInterface`` signs the session with
itsdangerous (salt ``cookie-session``, HMAC key derivation, SHA-1) and encodes
it with its tagged JSON. This module repeats exactly that, decoding only, so a
node given the app's ``SECRET_KEY`` reads the same session without importing
Flask. The user is ``session[PNS_SESSION_USER_KEY]``; the device is the session's
``_id`` (Flask-Login's session identifier), else a hash of the cookie's signature.
"""

from __future__ import annotations

import hashlib
import json
import logging
from base64 import b64decode
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..errors import SettingsError, Unauthorized
from ..settings import Settings
from . import Handshake, Identity, user_id_of

logger = logging.getLogger(__name__)


def _http_date(value: str) -> datetime | None:
    # As werkzeug.http.parse_date: an aware UTC datetime, None when unparseable.
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FlaskTaggedJSON:
    """The decoding half of ``flask.json.tag.TaggedJSONSerializer``.

    ``loads`` raises ``ValueError`` (or another exception, which itsdangerous
    turns into ``BadPayload``) on malformed input.
    """

    _TAGS: dict[str, Any] = {
        " di": lambda v: {k[:-2]: w for k, w in v.items()},  # a 1-key dict whose key is a tag
        " t": tuple,
        " b": b64decode,
        " m": str,  # markupsafe.Markup, a str subclass: plain str spares the dependency
        " u": UUID,
        " d": _http_date,
    }

    def loads(self, value: str | bytes) -> Any:
        return self._untag_scan(json.loads(value))

    def dumps(self, value: Any) -> str:
        # Untagged: PNS never writes sessions; itsdangerous only calls this to learn
        # that the serializer produces text.
        return json.dumps(value, separators=(",", ":"))

    def _untag_scan(self, value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: self._untag_scan(v) for k, v in value.items()}
            if len(value) == 1:
                key = next(iter(value))
                if key in self._TAGS:
                    return self._TAGS[key](value[key])
        elif isinstance(value, list):
            value = [self._untag_scan(item) for item in value]
        return value


class SessionCookieAuthenticator:
    """Reads the user from the Flask session cookie signed with ``PNS_SESSION_SECRET``.

    ``authenticate`` raises ``Unauthorized`` when the cookie is missing, badly
    signed (tampered, or another secret), older than ``PNS_SESSION_MAX_AGE``,
    undecodable, or holds no usable user id; the reason is logged at INFO, the
    cookie never.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.session_secret:
            raise SettingsError("session authentication needs PNS_SESSION_SECRET")
        self._cookie = settings.session_cookie
        self._user_key = settings.session_user_key
        self._max_age = settings.session_max_age
        # Exactly Flask's SecureCookieSessionInterface.get_signing_serializer.
        self._serializer = URLSafeTimedSerializer(
            settings.session_secret,
            salt="cookie-session",
            serializer=FlaskTaggedJSON(),
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
        )

    async def authenticate(self, handshake: Handshake) -> Identity:
        """The identity of the session cookie; ``Unauthorized`` on any failure."""
        cookie = handshake.cookies.get(self._cookie)
        if not cookie:
            return _refuse("no session cookie", handshake)
        try:
            # itsdangerous compares ages in whole seconds, as Flask does.
            session = self._serializer.loads(cookie, max_age=int(self._max_age))
        except BadSignature as exc:  # also SignatureExpired and BadPayload
            return _refuse(type(exc).__name__, handshake)
        if not isinstance(session, dict):
            return _refuse("session is not a dict", handshake)
        user_id = user_id_of(session.get(self._user_key))
        if user_id is None:
            return _refuse(f"no usable {self._user_key!r} in the session", handshake)
        session_id = session.get("_id")
        if isinstance(session_id, str) and session_id:
            device_id = session_id
        else:
            signature = cookie.rsplit(".", 1)[-1]
            device_id = "session:" + hashlib.sha256(signature.encode()).hexdigest()[:32]
        return Identity(user_id=user_id, device_id=device_id)

    async def close(self) -> None:
        """Nothing to release."""


def _refuse(reason: str, handshake: Handshake) -> Identity:
    logger.info("session cookie refused (remote %s): %s", handshake.remote, reason)
    raise Unauthorized()
