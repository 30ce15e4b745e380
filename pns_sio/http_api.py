"""HTTP routes: the notification API for applications (operations endpoints: ``ops.py``).

Every API error is ``{"error": {"code", "message"}}`` (plus ``fields`` for a
bad body); nothing is stored on any error. An ``Idempotency-Key`` header makes
a retried POST answer the first result instead of creating again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from . import jsoncodec, schemas
from .errors import (
    HTTP_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    TOO_LARGE,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    PNSError,
    RateLimited,
    StoreUnavailable,
    TooLarge,
    Unauthorized,
    UnsupportedMediaType,
    http_error,
)
from .limits import KeyedBuckets, client_address, parse_networks
from .notifier import Notifier
from .openapi import openapi_document
from .settings import Settings
from .store import Claim, JSONObject

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY = re.compile(rf"^[\x21-\x7e]{{1,{schemas.MAX_IDEMPOTENCY_KEY_LENGTH}}}$")
IDEMPOTENCY_KEY_RULE = (
    f"1 to {schemas.MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, no spaces"
)

Answer = tuple[int, dict[str, Any]]
AUTH_FAILURE_RATE = 1.0  # wrong API tokens a second per client address, after the burst
AUTH_FAILURE_BURST = 10.0


class IdempotencyKeys(Protocol):
    """The part of the store the API's Idempotency-Key needs."""

    async def claim_key(self, key: str, fingerprint: str) -> Claim: ...

    async def complete_key(self, key: str, response: JSONObject) -> None: ...

    async def release_key(self, key: str) -> None: ...


def json_response(body: Any, *, status: int = 200) -> web.Response:
    """A JSON answer encoded with the wire's codec."""
    return web.json_response(body, status=status, dumps=jsoncodec.dumps)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


class NotificationsAPI:
    """The notification endpoints: create, create a batch, resync a user."""

    def __init__(self, notifier: Notifier, keys: IdempotencyKeys, settings: Settings) -> None:
        self.notifier = notifier
        self.keys = keys
        self.tokens = tuple(token.encode() for token in settings.api_tokens)
        self.open = settings.demo
        self.max_body = settings.max_body_bytes
        self.max_data = settings.max_notification_bytes
        self.limits = KeyedBuckets(settings.api_rate, settings.api_burst)
        # Wrong tokens, per client address: guessing is as slow as a handshake storm.
        self.failures = KeyedBuckets(AUTH_FAILURE_RATE, AUTH_FAILURE_BURST)
        self.trusted_proxies = parse_networks(settings.trusted_proxies)

    def _authorize(self, request: web.Request) -> None:
        self._check_identity(request)
        # Per token (one per node); in demo mode, with no token, per client address.
        key = (
            "token"
            if not self.open
            else client_address(
                request.remote, request.headers.get("X-Forwarded-For"), self.trusted_proxies
            )
        )
        bucket = self.limits.bucket(key)
        if self.limits.rate > 0 and not bucket.take():
            retry = max(1, math.ceil(bucket.retry_after()))
            raise RateLimited("too many requests: slow down", retry_after=retry)

    def _check_identity(self, request: web.Request) -> None:
        if self.open:
            return
        if not self.tokens:
            raise NotFound("the HTTP API is off on this node: set PNS_API_TOKEN to enable it")
        address = client_address(
            request.remote, request.headers.get("X-Forwarded-For"), self.trusted_proxies
        )
        failures = self.failures.bucket(address)
        if not failures.available():
            retry = max(1, math.ceil(failures.retry_after()))
            raise RateLimited(
                "too many wrong API tokens from this address: slow down", retry_after=retry
            )
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        candidate = presented.strip().encode()
        # Constant time, and every token compared: timing says nothing about any of them.
        matched = False
        for token in self.tokens:
            matched |= hmac.compare_digest(candidate, token)
        if scheme.lower() != "bearer" or not matched:
            failures.take()
            raise Unauthorized("missing or wrong API token")

    async def _read_json(self, request: web.Request) -> Any:
        if not _is_json(request.content_type):
            raise UnsupportedMediaType("expected a JSON body (Content-Type: application/json)")
        if request.content_length is not None and request.content_length > self.max_body:
            raise _too_large(self.max_body)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(self.max_body) from None
        try:
            return jsoncodec.loads_strict(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("malformed JSON body") from None

    def _data(self, data: Any, what: str) -> JSONObject:
        return schemas.notification_data(data, self.max_data, what=what, parsed=True)

    async def _idempotent(
        self,
        request: web.Request,
        body: Any,
        count: int,
        run: Callable[[list[str] | None], Awaitable[Answer]],
    ) -> web.Response:
        """Run ``run`` once per Idempotency-Key (per endpoint), answering retries from the store.

        ``run`` gets the ``count`` record ids to write, derived from the key and the
        body: a retry whose first try's outcome was never recorded (it timed out,
        answered 503, or its node died between the insert and the key's completion)
        writes the same ids, which the store does not write twice.
        """
        key = request.headers.get("Idempotency-Key")
        if key is None:
            status, answer = await run(None)
            return json_response(answer, status=status)
        if not IDEMPOTENCY_KEY.match(key):
            raise InvalidRequest(
                f"invalid Idempotency-Key: {IDEMPOTENCY_KEY_RULE}",
                {"Idempotency-Key": [f"{IDEMPOTENCY_KEY_RULE}."]},
            )
        scoped = f"{request.path}:{key}"
        fingerprint = body_fingerprint(body)
        claim = await self.keys.claim_key(scoped, fingerprint)
        if claim.state == "done" and claim.response is not None:
            response = json_response(claim.response["body"], status=claim.response["status"])
            response.headers["Idempotent-Replayed"] = "true"
            return response
        if claim.state == "mismatch":
            raise IdempotencyKeyReused("this Idempotency-Key was used with another body")
        if claim.state == "pending":
            raise IdempotencyKeyInProgress("a request with this Idempotency-Key is running")
        try:
            status, answer = await run(derived_ids(scoped, fingerprint, count))
        except BaseException:
            try:
                await self.keys.release_key(scoped)
            except StoreUnavailable:
                logger.warning("could not release an idempotency key after a failure")
            raise
        try:
            await self.keys.complete_key(scoped, {"status": status, "body": answer})
        except StoreUnavailable:
            # Created; a retry within a few minutes gets 409, later it writes the same ids
            # (nothing twice) and answers then.
            logger.warning("could not record an idempotent answer; the notification stands")
        return json_response(answer, status=status)

    async def create(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await self._read_json(request)
        item = schemas.load(schemas.NEW_NOTIFICATION, body, what="body")
        data = self._data(item["data"], "data")

        async def run(ids: list[str] | None) -> Answer:
            [created] = await self.notifier.create_many([(item["user_id"], data)], ids=ids)
            return 201, {"id": created.id, "created_at": schemas.iso_utc(created.created_at)}

        return await self._idempotent(request, body, 1, run)

    async def create_batch(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await self._read_json(request)
        # Every item is checked before anything is written: all or nothing.
        batch = schemas.load(schemas.NOTIFICATION_BATCH, body, what="body")
        items = [
            (item["user_id"], self._data(item["data"], f"notifications.{i}.data"))
            for i, item in enumerate(batch["notifications"])
        ]

        async def run(ids: list[str] | None) -> Answer:
            created = await self.notifier.create_many(items, ids=ids)
            return 201, {"ids": [c.id for c in created]}

        return await self._idempotent(request, body, len(items), run)

    async def resync(self, request: web.Request) -> web.Response:
        self._authorize(request)
        user_id = schemas.user_id(request.match_info["user_id"])
        rev = await self.notifier.announce(user_id, None)
        return json_response({"user_id": user_id, "rev": rev})


def body_fingerprint(body: Any) -> str:
    """What tells one request body from another for an Idempotency-Key."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def derived_ids(scoped_key: str, fingerprint: str, count: int) -> list[str]:
    """``count`` record ids (24 hex digits, ObjectId-shaped) that only this key and body
    give: the same request retried writes the same records."""
    return [
        hashlib.sha256(f"{scoped_key}\0{fingerprint}\0{i}".encode()).hexdigest()[:24]
        for i in range(count)
    ]


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"request body over {limit} bytes")


# aiohttp's own errors (unknown route, wrong method, body over the bound), in PNS's codes.
_AIOHTTP_CODES = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: TOO_LARGE}


def _error_response(exc: BaseException) -> web.Response:
    status, body, headers = http_error(exc)
    response = json_response(body, status=status)
    response.headers.update(headers)
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answering(handler: Handler, on_status: Callable[[int], None]) -> Handler:
    """``handler`` with the API's error answers: PNS errors become the API's JSON
    errors, and ``on_status`` hears the status of every API answer.

    A wrapper per route rather than an application middleware: a middleware runs for
    every request, the WebSockets' too, and its frames stay for a WebSocket's life."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except PNSError as exc:
            response = _error_response(exc)
        except web.HTTPException as exc:
            code = _AIOHTTP_CODES.get(exc.status, HTTP_ERROR)
            body = {"error": {"code": code, "message": exc.reason}}
            response = json_response(body, status=exc.status)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except Exception:
            logger.exception("unexpected error in %s %s", request.method, request.path)
            response = _error_response(PNSError())
        on_status(response.status)
        return response

    return answer


def add_api_routes(
    app: web.Application, api: NotificationsAPI, on_status: Callable[[int], None]
) -> None:
    """The HTTP API under ``/api/``; what no route there takes (an unknown path, a
    method the path does not take) gets the API's JSON error too."""
    document = openapi_document()

    async def openapi(request: web.Request) -> web.Response:
        return json_response(document)

    routes: dict[str, tuple[str, Handler]] = {
        "/api/v1/notifications": ("POST", api.create),
        "/api/v1/notifications/batch": ("POST", api.create_batch),
        "/api/v1/users/{user_id}/resync": ("POST", api.resync),
        "/api/v1/openapi.json": ("GET", openapi),
    }
    for path, (method, handler) in routes.items():
        resource = app.router.add_resource(path)
        allowed = (method, "HEAD") if method == "GET" else (method,)
        answer = answering(handler, on_status)
        for taken in allowed:
            resource.add_route(taken, answer)
        resource.add_route("*", answering(_not_allowed(allowed), on_status))
    app.router.add_route("*", "/api/{rest:.*}", answering(_not_found, on_status))


def _not_allowed(allowed: tuple[str, ...]) -> Handler:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, allowed)

    return refuse


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()
