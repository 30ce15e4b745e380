"""The OpenAPI document of the HTTP API, generated from the marshmallow schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from . import __version__, schemas
from .errors import (
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
)


def _user_id_property(self: Any, field: fields.Field[Any], **kwargs: Any) -> dict[str, Any]:
    if isinstance(field, schemas.UserId):
        text = {"type": "string", "minLength": 1, "maxLength": schemas.MAX_USER_ID_LENGTH}
        return {"oneOf": [{**text, "pattern": r"\S"}, {"type": "integer"}]}
    return {}


# What each error the API answers means here; its status comes from errors.py's table.
REASONS: dict[type[PNSError], str] = {
    InvalidRequest: "Invalid body or header; `error.fields` names the bad fields. Nothing stored.",
    Unauthorized: "Missing or wrong API token.",
    NotFound: "The API is off on this node (no PNS_API_TOKEN).",
    IdempotencyKeyInProgress: "A request with this Idempotency-Key is still running; retry later.",
    TooLarge: "Body over PNS_MAX_BODY_BYTES.",
    UnsupportedMediaType: "Content-Type is not JSON.",
    IdempotencyKeyReused: "This Idempotency-Key was used with another body.",
    RateLimited: "Over PNS_API_RATE for this token; see Retry-After.",
    StoreUnavailable: "The store is unavailable; nothing stored.",
}
CREATE_ERRORS = tuple(REASONS)
RESYNC_ERRORS = (InvalidRequest, Unauthorized, NotFound, RateLimited, StoreUnavailable)


def _errors(errors: tuple[type[PNSError], ...]) -> dict[str, Any]:
    return {
        str(error.http_status): {
            "description": REASONS[error],
            "content": {"application/json": {"schema": "ErrorOut"}},
        }
        for error in sorted(errors, key=lambda e: e.http_status)
    }


IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "Makes a retry safe: the same key and body answer the first result "
    "(for 24 h, on any node); the same key with another body is 422.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": schemas.MAX_IDEMPOTENCY_KEY_LENGTH,
        "pattern": r"^[!-~]+$",
    },
}


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


@cache
def openapi_document() -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="PNS HTTP API",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": "Create notifications for users; see docs/protocol.md."},
    )
    plugin.converter.add_attribute_function(_user_id_property)  # type: ignore[union-attr]
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in (
        ("NewNotification", schemas.NewNotification),
        ("NotificationBatch", schemas.NotificationBatch),
        ("CreatedOut", schemas.CreatedOut),
        ("BatchCreatedOut", schemas.BatchCreatedOut),
        ("ResyncOut", schemas.ResyncOut),
        ("ErrorOut", schemas.ErrorOut),
    ):
        spec.components.schema(name, schema=schema)
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    spec.path(
        path="/api/v1/notifications",
        operations={
            "post": {
                "summary": "Create a notification and push the new count to the user's devices",
                "security": secured,
                "parameters": [IDEMPOTENCY_HEADER],
                "requestBody": _json_body("NewNotification"),
                "responses": {
                    "201": {
                        "description": "Created (or, with a replayed Idempotency-Key, the "
                        "first answer again).",
                        "content": {"application/json": {"schema": "CreatedOut"}},
                    },
                    **_errors(CREATE_ERRORS),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/notifications/batch",
        operations={
            "post": {
                "summary": "Create up to 1,000 notifications, all or nothing",
                "security": secured,
                "parameters": [IDEMPOTENCY_HEADER],
                "requestBody": _json_body("NotificationBatch"),
                "responses": {
                    "201": {
                        "description": "All created, ids in order.",
                        "content": {"application/json": {"schema": "BatchCreatedOut"}},
                    },
                    **_errors(CREATE_ERRORS),
                },
            }
        },
    )
    spec.path(
        path="/api/v1/users/{user_id}/resync",
        operations={
            "post": {
                "summary": "Raise the user's rev and push the true count to every device",
                "security": secured,
                "parameters": [
                    {
                        "in": "path",
                        "name": "user_id",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": schemas.MAX_USER_ID_LENGTH,
                        },
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Resynced.",
                        "content": {"application/json": {"schema": "ResyncOut"}},
                    },
                    **_errors(RESYNC_ERRORS),
                },
            }
        },
    )
    return spec.to_dict()
