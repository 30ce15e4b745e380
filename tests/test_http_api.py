"""PROTOCOL "Through HTTP": POST /api/v1/notifications, and the operations endpoints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .support.api import API_TOKEN
from .support.outages import sqlite_write_locked

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def stored(node, user: str = "42") -> int:
    return (await node.node.store.unseen(user)).count


async def post(http, node, body, *, headers=None, raw: bytes | None = None):
    url = f"{node.url}/api/v1/notifications"
    sent_headers = {**AUTH, **(headers or {})}
    if raw is not None:
        sent_headers.setdefault("Content-Type", "application/json")
        async with http.post(url, data=raw, headers=sent_headers) as response:
            return response.status, await response.json()
    async with http.post(url, json=body, headers=sent_headers) as response:
        return response.status, await response.json()


@pytest.fixture
async def api_node(start_node):
    """A node outside demo mode, so the API token is required."""
    return await start_node(demo=False, jwt_secret="x" * 32)


async def test_created_notification_reaches_the_users_devices(node, connect, http) -> None:
    device = await connect(node, "42")
    await device.wait_count(0)
    status, body = await post(http, node, {"user_id": "42", "data": {"text": "hi"}})
    assert status == 201
    assert set(body) == {"id", "created_at"}
    assert body["created_at"].endswith("Z")
    await device.wait_count(1)
    assert await stored(node) == 1


async def test_integer_user_id_is_its_decimal_string(node, connect, http) -> None:
    device = await connect(node, "42")
    status, _ = await post(http, node, {"user_id": 42, "data": {}})
    assert status == 201
    await device.wait_count(1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": {}}, "user_id"),
        ({"user_id": "", "data": {}}, "user_id"),
        ({"user_id": True, "data": {}}, "user_id"),
        ({"user_id": "42"}, "data"),
        ({"user_id": "42", "data": "text"}, "data"),
        ({"user_id": "42", "data": [1]}, "data"),
        ({"user_id": "42", "data": {}, "extra": 1}, "extra"),
    ],
)
async def test_bad_body_is_400_naming_the_field_and_stores_nothing(
    api_node, http, body, field
) -> None:
    status, answer = await post(http, api_node, body)
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert field in answer["error"]["fields"]
    assert field in answer["error"]["message"]
    assert await stored(api_node) == 0


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'{"user_id": "42", "data": NaN}'])
async def test_malformed_json_is_400(api_node, http, raw) -> None:
    status, answer = await post(http, api_node, None, raw=raw)
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert await stored(api_node) == 0


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}],
    ids=["none", "wrong", "no-scheme"],
)
async def test_wrong_token_is_401(api_node, http, headers) -> None:
    status, answer = await post(http, api_node, {"user_id": "42", "data": {}}, headers=headers)
    assert status == 401
    assert answer["error"]["code"] == "unauthorized"
    assert await stored(api_node) == 0


async def test_api_is_off_outside_demo_mode_without_a_token(start_node, http) -> None:
    node = await start_node(demo=False, jwt_secret="x" * 32, api_token=None)
    status, answer = await post(http, node, {"user_id": "42", "data": {}})
    assert status == 404
    assert "PNS_API_TOKEN" in answer["error"]["message"]


async def test_non_json_content_type_is_415(api_node, http) -> None:
    status, answer = await post(
        http,
        api_node,
        None,
        raw=b'{"user_id": "42", "data": {}}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415
    assert answer["error"]["code"] == "unsupported_media_type"
    assert await stored(api_node) == 0


async def test_body_over_the_limit_is_413(start_node, http) -> None:
    node = await start_node(demo=False, jwt_secret="x" * 32, max_body_bytes=1000)
    body = {"user_id": "42", "data": {"text": "x" * 2000}}
    status, answer = await post(http, node, body)
    assert status == 413
    assert answer["error"]["code"] == "too_large"
    assert await stored(node) == 0


async def test_data_over_the_notification_limit_is_400_naming_data(start_node, http) -> None:
    node = await start_node(max_notification_bytes=100)
    status, answer = await post(http, node, {"user_id": "42", "data": {"text": "x" * 200}})
    assert status == 400
    assert "data" in answer["error"]["fields"]
    assert await stored(node) == 0


async def test_store_down_is_503_and_stores_nothing(start_node, http, sqlite_url) -> None:
    node = await start_node(store_url=sqlite_url, store_timeout=0.3)
    with sqlite_write_locked(sqlite_url):
        status, answer = await post(http, node, {"user_id": "42", "data": {}})
    assert status == 503
    assert answer["error"]["code"] == "unavailable"
    assert await stored(node) == 0


async def test_healthz_readyz_and_metrics(node, http, connect) -> None:
    device = await connect(node, "user-7f3a")
    await device.wait_count(0)
    async with http.get(f"{node.url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{node.url}/readyz") as response:
        assert response.status == 200
        body = await response.json()
        assert body["store"] == "up"
        assert body["broker"] == "embedded"
    async with http.get(f"{node.url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert "pns_connections 1.0" in text
    assert "user-7f3a" not in text  # no user ids as labels
    # The connection's first count cost one count query, and its time was recorded.
    assert 'pns_store_queries_total{op="unseen"} 1.0' in text
    assert 'pns_store_seconds_count{op="unseen"} 1.0' in text


async def test_every_metric_is_documented(node) -> None:
    served = {family.name for family in node.node.metrics.registry.collect()}
    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    documented = {
        name.removesuffix("_total") for name in re.findall(r"^\| `(pns_\w+)` \|", doc, re.MULTILINE)
    }
    assert served == documented


async def test_readyz_is_503_while_the_store_is_locked_for_writes_only_not(
    start_node, http, sqlite_url
) -> None:
    # SQLite in WAL mode still reads while another process writes: the node stays ready.
    node = await start_node(store_url=sqlite_url, store_timeout=0.3)
    with sqlite_write_locked(sqlite_url):
        async with http.get(f"{node.url}/readyz") as response:
            assert response.status == 200
            assert json.loads(await response.text())["store"] == "up"


async def test_a_path_or_method_the_api_does_not_take_gets_its_json_error(api_node, http) -> None:
    async with http.get(f"{api_node.url}/api/v1/nothing-here") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
    async with http.get(f"{api_node.url}/api/v1/notifications") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
        assert (await resp.json())["error"]["code"] == "method_not_allowed"
    async with http.delete(f"{api_node.url}/api/v1/openapi.json") as resp:
        assert resp.status == 405
        assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
    async with http.head(f"{api_node.url}/api/v1/openapi.json") as resp:
        assert resp.status == 200
    assert api_node.metric("pns_http_requests_total", status="404") == 1
    assert api_node.metric("pns_http_requests_total", status="405") == 2
    # Outside /api/ nothing answers in the API's shape.
    async with http.get(f"{api_node.url}/elsewhere") as resp:
        assert resp.status == 404
        assert resp.content_type != "application/json"
