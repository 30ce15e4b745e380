"""Forward authentication: ask the application who the handshake's credentials are.

The node sends ``GET PNS_AUTH_URL`` with the handshake's ``Cookie`` and
``Authorization`` headers only (``Authorization: Bearer <token>`` when the
client sent ``auth: {token}`` and no such header). The app answers 200
``{"user_id": str | int, "device_id": str (optional)}``.

Answers are cached for ``PNS_AUTH_CACHE_TTL`` seconds per credentials (a
logged-out session stays valid for new connections that long), refusals too;
concurrent lookups of the same credentials share one request, so a reconnect
storm costs the app one request per session.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import aiohttp

from .. import jsoncodec
from ..errors import AuthUnavailable, SettingsError, Unauthorized
from ..settings import Settings
from . import Handshake, Identity, user_id_of

logger = logging.getLogger(__name__)

CACHE_SIZE = 10_000


class ForwardAuthenticator:
    """Authenticates by asking the application's auth endpoint.

    ``authenticate`` raises ``Unauthorized`` with no credentials (the app is not
    asked), on a 3xx (redirects are not followed) or 4xx answer, or a 200 whose
    body is not the expected JSON; ``AuthUnavailable`` when the endpoint cannot
    be reached, answers 5xx, or takes longer than ``PNS_AUTH_TIMEOUT`` (not
    cached: the client may retry), or after ``close()``. Credentials are never logged.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        if not settings.auth_url:
            raise SettingsError("forward authentication needs PNS_AUTH_URL")
        self._url = settings.auth_url
        self._timeout = settings.auth_timeout
        self._ttl = settings.auth_cache_ttl
        self._clock = clock
        self._cache_size = cache_size
        self._session: aiohttp.ClientSession | None = None
        # key -> (expiry on self._clock, identity or None for a refusal); oldest first
        self._cache: OrderedDict[str, tuple[float, Identity | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[Identity]] = {}
        self._closed = False

    async def authenticate(self, handshake: Handshake) -> Identity:
        """The identity the app gives the handshake's credentials (see the class doc)."""
        headers = _credentials(handshake)
        if not headers:
            logger.info("forward auth refused (remote %s): no credentials", handshake.remote)
            raise Unauthorized()
        # Names included: a cookie must not share a cache entry with an equal Authorization.
        raw = "\n".join(f"{name}: {value}" for name, value in headers.items())
        key = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
        entry = self._cache.get(key)
        if entry is not None:
            expires, identity = entry
            if expires > self._clock():
                if identity is None:
                    raise Unauthorized()
                return identity
            del self._cache[key]
        if self._closed:
            raise AuthUnavailable()
        task = self._inflight.get(key)
        if task is None:
            # The lookup is owned by the authenticator, not by this handshake: a
            # client that gives up does not cancel it for the others waiting on it.
            task = asyncio.create_task(self._lookup(key, headers))
            self._inflight[key] = task
            task.add_done_callback(partial(self._done, key))
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel lookups in flight and close the HTTP session; idempotent."""
        self._closed = True
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _done(self, key: str, task: asyncio.Task[Identity]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" noise when all waiters left

    async def _lookup(self, key: str, headers: dict[str, str]) -> Identity:
        try:
            identity = await self._ask(key, headers)
        except Unauthorized:
            self._remember(key, None)
            raise
        except AuthUnavailable:
            raise
        except Exception:  # boundary: the Authenticator contract allows no other error
            logger.exception("forward auth failed unexpectedly")
            raise AuthUnavailable() from None
        self._remember(key, identity)
        return identity

    def _remember(self, key: str, identity: Identity | None) -> None:
        self._cache[key] = (self._clock() + self._ttl, identity)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _ask(self, key: str, headers: dict[str, str]) -> Identity:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                # One session serves every user: never keep cookies the app sets.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._session.get(self._url, headers=headers, allow_redirects=False) as resp,
            ):
                status = resp.status
                body = await resp.read() if status == 200 else b""
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("auth endpoint unavailable: %s %s", type(exc).__name__, exc)
            raise AuthUnavailable() from None
        if status >= 500:
            logger.warning("auth endpoint unavailable: HTTP %d", status)
            raise AuthUnavailable()
        if status != 200:
            logger.info("forward auth refused: HTTP %d", status)
            raise Unauthorized()
        identity = _identity(body, default_device="forward:" + key[:32])
        if identity is None:
            logger.info("forward auth refused: malformed 200 body from the auth endpoint")
            raise Unauthorized()
        return identity


def _credentials(handshake: Handshake) -> dict[str, str]:
    headers: dict[str, str] = {}
    cookie = handshake.headers.get("cookie")
    if cookie:
        headers["Cookie"] = cookie
    authorization = handshake.headers.get("authorization")
    if authorization:
        headers["Authorization"] = authorization
    elif handshake.token is not None and handshake.token.isprintable():
        # isprintable: no CR/LF smuggled into the request as extra headers
        headers["Authorization"] = f"Bearer {handshake.token}"
    return headers


def _identity(body: bytes, *, default_device: str) -> Identity | None:
    try:
        data = jsoncodec.loads(body)
    except ValueError:  # also UnicodeDecodeError, and nesting past jsoncodec.MAX_DEPTH
        return None
    if not isinstance(data, dict):
        return None
    user_id = user_id_of(data.get("user_id"))
    device = data.get("device_id")
    device_id = default_device if device is None else user_id_of(device)
    if user_id is None or device_id is None:
        return None
    return Identity(user_id=user_id, device_id=device_id)
