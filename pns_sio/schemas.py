"""marshmallow schemas: every inbound payload (socket events, HTTP bodies) and what goes out.

``load`` turns a validation failure into ``InvalidRequest`` whose message
names the field; nothing else in PNS interprets raw client input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from . import jsoncodec
from .errors import InvalidRequest
from .store import JSONObject, Notification
from .wire import FETCH_LIMIT_DEFAULT, FETCH_LIMIT_MAX

MAX_USER_ID_LENGTH = 256
# Each id in an acknowledgement's ``received``. An application's own records may carry
# string ids of its choosing (docs/protocol.md): the bound only keeps a hostile
# acknowledgement small, so it is far above any id a store hands out.
MAX_NOTIFICATION_ID_LENGTH = 1024
# An Idempotency-Key header: 1 to this many printable ASCII characters, no spaces.
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class StrictInteger(fields.Integer):
    """An integer that is really one: no strings, floats or booleans."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class UserId(fields.Field[str]):
    """A user id: a non-empty string, or an integer sent as its decimal string."""

    default_error_messages = {
        "invalid": "Not a valid user id: expected a non-empty string or an integer.",
        "too_long": f"Longer than {MAX_USER_ID_LENGTH} characters.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise self.make_error("invalid")
        if len(value) > MAX_USER_ID_LENGTH:
            raise self.make_error("too_long")
        return value


class FetchRequest(Schema):
    """``get-new-notifications`` payload."""

    class Meta:
        unknown = RAISE

    limit = StrictInteger(
        load_default=FETCH_LIMIT_DEFAULT,
        validate=validate.Range(min=1, max=FETCH_LIMIT_MAX),
    )


class AckReceived(Schema):
    """The acknowledgement ``{"received": [ids]}`` of a ``new-notifications`` batch."""

    class Meta:
        unknown = RAISE

    received = fields.List(
        fields.String(validate=validate.Length(max=MAX_NOTIFICATION_ID_LENGTH)),
        required=True,
        validate=validate.Length(max=1000),
    )


class NewNotification(Schema):
    """Body of ``POST /api/v1/notifications``."""

    class Meta:
        unknown = RAISE

    user_id = UserId(required=True)
    # JSON object keys are strings: no field per key to check them again.
    data = fields.Dict(required=True)


MAX_BATCH = 1000


class NotificationBatch(Schema):
    """Body of ``POST /api/v1/notifications/batch``."""

    class Meta:
        unknown = RAISE

    notifications = fields.List(
        fields.Nested(NewNotification),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
    )


class CreatedOut(Schema):
    """Answer of ``POST /api/v1/notifications``."""

    id = fields.String(required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})


class BatchCreatedOut(Schema):
    ids = fields.List(fields.String(), required=True)


class ResyncOut(Schema):
    user_id = fields.String(required=True)
    rev = fields.Integer(required=True)


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    field_errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), data_key="fields"
    )


class ErrorOut(Schema):
    error = fields.Nested(ErrorBody, required=True)


class NotificationOut(Schema):
    """One notification as a client receives it."""

    id = fields.String()
    data = fields.Raw()
    created_at = fields.Function(lambda n: iso_utc(n.created_at))


FETCH_REQUEST = FetchRequest()
ACK_RECEIVED = AckReceived()
NEW_NOTIFICATION = NewNotification()
NOTIFICATION_BATCH = NotificationBatch()
NOTIFICATION_OUT = NotificationOut()


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as on the wire."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _messages(error: ValidationError) -> dict[str, list[str]]:
    """marshmallow's messages as ``{"dotted.path": [reasons]}`` (``notifications.3.data``)."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        elif isinstance(node, list | tuple) and all(isinstance(m, str) for m in node):
            out.setdefault(prefix or "_schema", []).extend(node)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(prefix, item)
        else:
            out.setdefault(prefix or "_schema", []).append(str(node))

    walk("", error.messages)
    return out


def load(schema: Schema, payload: Any, *, what: str = "payload") -> dict[str, Any]:
    """Validate ``payload`` with ``schema``; raise ``InvalidRequest`` naming the bad fields."""
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise InvalidRequest(
            f"{what} must be a JSON object", fields={"_schema": ["Not a JSON object."]}
        )
    try:
        result: dict[str, Any] = schema.load(payload)
    except ValidationError as error:
        reasons = _messages(error)
        summary = "; ".join(
            f"{name}: {' '.join(msgs)}" if name != "_schema" else " ".join(msgs)
            for name, msgs in reasons.items()
        )
        raise InvalidRequest(f"invalid {what}: {summary}", fields=reasons) from None
    return result


def user_id(value: Any, *, what: str = "user_id") -> str:
    """A user id as PNS keeps it, or ``InvalidRequest`` naming ``what``."""
    try:
        return UserId()._deserialize(value, what, None)
    except ValidationError as error:
        reasons = [str(m) for m in error.messages] if isinstance(error.messages, list) else []
        raise InvalidRequest(f"invalid {what}: {' '.join(reasons)}", {what: reasons}) from None


def notification_data(
    data: Any, max_bytes: int, *, what: str = "data", parsed: bool = False
) -> JSONObject:
    """Check a notification's data: a JSON object of at most ``max_bytes`` as compact JSON.

    ``parsed``: ``data`` was read from strict JSON (an HTTP body), so it encodes, and
    its size is measured with the wire's encoder; Python callers' data is checked by
    the standard library's, which refuses what JSON cannot hold."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"invalid {what}: expected a JSON object", {what: ["Not an object."]})
    try:
        text = (
            jsoncodec.dumps(data)
            if parsed
            else json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        )
        size = len(text.encode())
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"invalid {what}: not JSON-serializable ({exc})", {what: ["Not JSON-serializable."]}
        ) from None
    if size > max_bytes:
        raise InvalidRequest(
            f"invalid {what}: {size} bytes, over the limit of {max_bytes}",
            {what: [f"Over the limit of {max_bytes} bytes."]},
        )
    return data


def batch_payload(batch: list[Notification], has_more: bool) -> dict[str, Any]:
    return {"notifications": NOTIFICATION_OUT.dump(batch, many=True), "has_more": has_more}


def accepted_ids(ack_args: tuple[Any, ...], batch_ids: list[str]) -> list[str]:
    """Which ids of the batch an acknowledgement accepts (docs/protocol.md).

    No argument or ``null``: all of them. ``{"received": [...]}``: those of
    the batch among them. Anything else raises ``InvalidRequest``.
    """
    if len(ack_args) == 0 or (len(ack_args) == 1 and ack_args[0] is None):
        return list(batch_ids)
    if len(ack_args) > 1:
        raise InvalidRequest("invalid acknowledgement: expected one argument")
    loaded = load(ACK_RECEIVED, ack_args[0], what="acknowledgement")
    wanted = set(loaded["received"])
    return [nid for nid in batch_ids if nid in wanted]
