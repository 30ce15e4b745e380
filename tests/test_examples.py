"""The examples/ applications work against real nodes."""

from __future__ import annotations

import asyncio

from examples import aiohttp_app, flask_app
from pns_sio import Publisher, SyncPublisher

from .support.nodes import node_settings


async def test_flask_example_cookie_connects_and_its_notify_reaches_the_device(
    start_node, connect, redis_server, sqlite_url, monkeypatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "flask-example-secret-0123456789abcdef")
    node = await start_node(
        node_settings(
            demo=False,
            store_url=sqlite_url,
            redis_url=redis_server.url,
            session_secret="flask-example-secret-0123456789abcdef",
        )
    )
    await node.node.broker_ready.wait()
    publisher = SyncPublisher(store_url=sqlite_url, redis_url=redis_server.url)
    app = flask_app.create_app(publisher)

    def log_in_and_notify() -> tuple[str, int]:
        with app.test_client() as browser:
            browser.post("/login", data={"user_id": "42"})
            cookie = browser.get_cookie("session")
            assert cookie is not None
            return cookie.value, browser.post("/notify").status_code

    cookie, status = await asyncio.to_thread(log_in_and_notify)
    assert status == 201
    device = await connect(node, headers={"Cookie": f"session={cookie}"})
    await device.wait_count(1)
    await asyncio.to_thread(publisher.close)


async def test_aiohttp_example_token_connects_and_its_notify_reaches_the_device(
    start_node, connect, redis_server, sqlite_url, aiohttp_client, monkeypatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", "aiohttp-example-secret-0123456789abcdef")
    node = await start_node(
        node_settings(
            demo=False,
            store_url=sqlite_url,
            redis_url=redis_server.url,
            jwt_secret="aiohttp-example-secret-0123456789abcdef",
        )
    )
    await node.node.broker_ready.wait()
    client = await aiohttp_client(
        aiohttp_app.create_app(Publisher(store_url=sqlite_url, redis_url=redis_server.url))
    )
    token = (await (await client.get("/token?user=42")).json())["token"]
    device = await connect(node, auth={"token": token})
    await device.wait_count(0)
    response = await client.post("/notify?user=42")
    assert response.status == 201
    await device.wait_count(1)


async def test_the_examples_are_safe_to_copy(
    aiohttp_client, monkeypatch, sqlite_url, redis_server
) -> None:
    """They refuse a short or missing secret, and their button keeps the page (the
    count arrives through PNS, not as a page of raw JSON)."""
    import pytest

    monkeypatch.setenv("JWT_SECRET", "short")
    with pytest.raises(SystemExit, match="at least 32"):
        aiohttp_app.token_for("42")
    urls = {"store_url": sqlite_url, "redis_url": redis_server.url}
    monkeypatch.setenv("SECRET_KEY", "")
    with pytest.raises(SystemExit, match="at least 32"):
        flask_app.create_app(SyncPublisher(**urls))

    monkeypatch.setenv("SECRET_KEY", "flask-example-secret-0123456789abcdef")
    app = flask_app.create_app(SyncPublisher(**urls))
    with app.test_client() as browser:
        browser.post("/login", data={"user_id": "42"})
        flask_page = browser.get("/").get_data(as_text=True)
    client = await aiohttp_client(aiohttp_app.create_app(Publisher(**urls)))
    aiohttp_page = await (await client.get("/?user=42")).text()
    for page in (flask_page, aiohttp_page):
        assert 'id="notify"' in page
        assert 'action="/notify' not in page
