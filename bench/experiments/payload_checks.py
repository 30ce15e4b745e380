"""What marshmallow costs on the two hottest paths, against the least a check could cost:
a get-new-notifications payload, a POST /api/v1/notifications body (schemas.load against a
type check of the commonest shape), and a batch of one notification for new-notifications
(marshmallow's dump against the dict built by hand). DESIGN.md keeps every payload in
marshmallow (one place says what is valid); this says what that costs (session 13).

    .venv/bin/python bench/experiments/payload_checks.py [ROUNDS]

Each figure is the best of ROUNDS (default 5) timings of 20,000 calls, in µs per call.
"""

from __future__ import annotations

import sys
import timeit
from datetime import UTC, datetime
from typing import Any

from pns_sio import schemas
from pns_sio.store import Notification


def quick_limit(payload: Any) -> int:
    """The commonest get-new-notifications payload, checked by hand (no error wording)."""
    limit = payload.get("limit") if type(payload) is dict and len(payload) == 1 else None
    if type(limit) is int and 1 <= limit <= 100:
        return limit
    raise ValueError(payload)


def quick_body(body: Any) -> dict[str, Any]:
    """The commonest create body, checked by hand (no error wording)."""
    user, data = body.get("user_id"), body.get("data")
    if type(user) is str and 0 < len(user) <= 256 and not user.isspace() and type(data) is dict:
        return {"user_id": user, "data": data}
    raise ValueError(body)


def by_hand(batch: list[Notification], has_more: bool) -> dict[str, Any]:
    return {
        "notifications": [
            {"id": n.id, "data": n.data, "created_at": schemas.iso_utc(n.created_at)} for n in batch
        ],
        "has_more": has_more,
    }


RECORD = Notification(
    id="665f1c2b3a4d5e6f70819203",
    user_id="user-17",
    data={"title": "New comment", "url": "/posts/17#c3"},
    created_at=datetime.now(UTC),
)
FETCH = {"limit": 1}
BODY = {"user_id": "user-17", "data": {"title": "New comment", "url": "/posts/17#c3"}}

CASES: list[tuple[str, Any, Any]] = [
    (
        "get-new-notifications payload",
        lambda: schemas.load(schemas.FETCH_REQUEST, FETCH)["limit"],
        lambda: quick_limit(FETCH),
    ),
    (
        "POST /api/v1/notifications body",
        lambda: schemas.load(schemas.NEW_NOTIFICATION, BODY, what="body"),
        lambda: quick_body(BODY),
    ),
    (
        "a batch of one for new-notifications",
        lambda: schemas.batch_payload([RECORD], False),
        lambda: by_hand([RECORD], False),
    ),
]


def best(fn: Any, rounds: int, number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=rounds)) / number * 1e6


def main(rounds: int) -> None:
    for name, schema_way, hand_way in CASES:
        assert schema_way() == hand_way(), name
        before, after = best(schema_way, rounds), best(hand_way, rounds)
        print(
            f"{name}: marshmallow {before:.2f} µs, by hand {after:.2f} µs, difference {before - after:.2f}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
