"""HTTP routes: the notification API for applications, and the operations endpoints.

Every API error is ``{"error": {"code", "message"}}`` (plus ``fields`` for a
bad body); nothing is stored on any error.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from . import schemas
from .errors import InvalidRequest, StoreUnavailable
from .node import Node

logger = logging.getLogger(__name__)

NODE = web.AppKey("node", Node)
JSON_TYPES = ("application/json",)


def json_error(
    status: int, code: str, message: str, fields: dict[str, list[str]] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return web.json_response(body, status=status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_json(content_type: str) -> bool:
    return content_type in JSON_TYPES or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


class NotificationsAPI:
    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.settings
        self.token = settings.api_token
        self.open = settings.demo
        self.max_body = settings.max_body_bytes
        self.max_data = settings.max_notification_bytes

    def _authorize(self, request: web.Request) -> web.Response | None:
        if self.open:
            return None
        if self.token is None:
            return json_error(
                404, "not_found", "the HTTP API is off on this node: set PNS_API_TOKEN to enable it"
            )
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        # Constant time, so response timing says nothing about the token.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self.token.encode()
        ):
            return json_error(401, "unauthorized", "missing or wrong API token")
        return None

    async def _read_json(self, request: web.Request) -> Any:
        if not _is_json(request.content_type):
            raise ApiError(
                415,
                "unsupported_media_type",
                "expected a JSON body (Content-Type: application/json)",
            )
        if request.content_length is not None and request.content_length > self.max_body:
            raise _too_large(self.max_body)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(self.max_body) from None
        if len(raw) > self.max_body:
            raise _too_large(self.max_body)
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("malformed JSON body") from None

    async def create(self, request: web.Request) -> web.Response:
        if (refusal := self._authorize(request)) is not None:
            return refusal
        body = await self._read_json(request)
        item = schemas.load(schemas.NEW_NOTIFICATION, body, what="body")
        size = len(json.dumps(item["data"], separators=(",", ":"), ensure_ascii=False).encode())
        if size > self.max_data:
            raise InvalidRequest(
                f"invalid body: data: {size} bytes, over the limit of {self.max_data}",
                fields={"data": [f"Over the limit of {self.max_data} bytes."]},
            )
        created = await self.node.create_notification(item["user_id"], item["data"])
        return web.json_response(
            {"id": created.id, "created_at": schemas.iso_utc(created.created_at)}, status=201
        )


class ApiError(Exception):
    """An HTTP error answer with the API's JSON body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"request body over {limit} bytes")


@web.middleware
async def api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn PNS errors into the API's JSON errors; only /api/ paths."""
    node = request.app[NODE]
    if not request.path.startswith("/api/"):
        return await handler(request)  # type: ignore[no-any-return]
    try:
        response: web.StreamResponse = await handler(request)
    except InvalidRequest as exc:
        response = json_error(400, exc.code, exc.message, exc.fields or None)
    except StoreUnavailable as exc:
        response = json_error(503, exc.code, exc.message)
    except ApiError as exc:
        response = json_error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:  # aiohttp's own: unknown route, wrong method, ...
        response = json_error(exc.status, "http_error", exc.reason)
    except Exception:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        response = json_error(500, "internal", "internal error")
    node.metrics.http_requests.labels(str(response.status)).inc()
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready, body = await request.app[NODE].readiness()
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[NODE].metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


def add_routes(app: web.Application, node: Node) -> None:
    api = NotificationsAPI(node)
    app.router.add_post("/api/v1/notifications", api.create)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
