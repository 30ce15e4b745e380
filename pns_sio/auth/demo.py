"""Demo authentication: the client says who it is (``auth: {"user_id": "..."}``).

For local trials only (``--demo``): anyone can claim any user. A configured
real authenticator still serves handshakes that do not name a user.
"""

from __future__ import annotations

import uuid

from ..errors import Unauthorized
from . import Authenticator, Handshake, Identity, user_id_of

MAX_DEVICE_ID_LENGTH = 256


class DemoAuthenticator:
    """Accepts ``auth: {"user_id": str | int, "device_id": str (optional)}`` as is.

    The device is ``device_id`` when it is a non-empty string (up to 256
    characters), else a random id per connection. A handshake without
    ``user_id`` goes to ``fallback`` (whose errors propagate); without a
    fallback, and for a ``user_id`` that is empty, longer than the HTTP API takes
    (``MAX_USER_ID_LENGTH``) or neither a string nor an integer, ``authenticate``
    raises ``Unauthorized``.
    """

    def __init__(self, fallback: Authenticator | None = None) -> None:
        self._fallback = fallback

    async def authenticate(self, handshake: Handshake) -> Identity:
        """The claimed identity, or the fallback's answer; see the class doc."""
        auth = handshake.auth
        if not isinstance(auth, dict) or auth.get("user_id") is None:
            if self._fallback is not None:
                return await self._fallback.authenticate(handshake)
            raise Unauthorized()
        user_id = user_id_of(auth["user_id"])
        if user_id is None:
            raise Unauthorized()
        device = auth.get("device_id")
        if isinstance(device, str) and 0 < len(device) <= MAX_DEVICE_ID_LENGTH:
            device_id = device
        else:
            device_id = "demo:" + uuid.uuid4().hex
        return Identity(user_id=user_id, device_id=device_id)

    async def close(self) -> None:
        """Close the fallback, if any."""
        if self._fallback is not None:
            await self._fallback.close()
