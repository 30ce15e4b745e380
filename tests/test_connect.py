"""PROTOCOL "Connection": authenticate, refuse, origins, the first count."""

from __future__ import annotations

import logging
import time

import jwt
import pytest
from aiohttp import web
from flask import Flask, session

from pns_sio.settings import Settings

from .support.api import notify
from .support.devices import ConnectDevice, ConnectRefused
from .support.nodes import StartNode, node_settings
from .support.raw import RawClient
from .support.waiting import eventually

SECRET = "s3cret-for-tests-only-32-bytes-long!"


def token(sub: object, **claims: object) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 60, **claims}, SECRET, "HS256")


async def test_count_is_the_first_event(node, connect: ConnectDevice) -> None:
    device = await connect(node, "42")
    event, data = await device.first_event()
    assert event == "new-notifications-count"
    assert data == {"count": 0, "rev": 0}


async def test_a_new_connection_gets_the_current_count(node, connect, http) -> None:
    for _ in range(3):
        await notify(http, node, "42")
    device = await connect(node, "42")
    event, data = await device.first_event()
    assert event == "new-notifications-count"
    assert data == {"count": 3, "rev": 3}


async def test_jwt_node_accepts_a_valid_token(start_node: StartNode, connect, sqlite_url) -> None:
    node = await start_node(node_settings(demo=False, store_url=sqlite_url, jwt_secret=SECRET))
    device = await connect(node, auth={"token": token(42, sid="browser-1")})
    await device.wait_count(0)
    assert node.node.realtime.connections[device.sio.get_sid()].identity.user_id == "42"


@pytest.mark.parametrize(
    "auth",
    [
        None,
        {},
        {"token": "garbage"},
        {"token": jwt.encode({"sub": "42"}, "wrong-secret-" * 3)},
        {"user_id": "42"},
    ],
    ids=["no-auth", "empty", "garbage", "wrong-secret", "demo-claim-outside-demo"],
)
async def test_jwt_node_refuses_bad_credentials(start_node, connect, sqlite_url, auth) -> None:
    node = await start_node(node_settings(demo=False, store_url=sqlite_url, jwt_secret=SECRET))
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, auth=auth or None)
    assert refused.value.error == {"message": "unauthorized", "data": {"code": "unauthorized"}}
    assert node.node.realtime.connections == {}


async def test_a_joined_session_keeps_its_credentials_and_lets_the_other_headers_go(
    start_node: StartNode, http, sqlite_url
) -> None:
    # python-socketio keeps a session's environ for the connection's life: a browser's
    # headers (KiBs of them with an application's cookies) would stay with every
    # connection. Once joined, only what authenticates a later join stays.
    settings = node_settings(
        demo=False, store_url=sqlite_url, jwt_secret=SECRET, jwt_cookie="access_token"
    )
    node = await start_node(settings)
    cookie = f"prefs={'p' * 2048}; access_token={token('42')}"
    browser = {"Cookie": cookie, "User-Agent": "Mozilla/5.0 " + "u" * 300, "Accept-Language": "fr"}
    client = RawClient(http)
    sid = await client.open(node.url, headers=browser)
    _, args = await client.event("new-notifications-count")
    assert args == [{"count": 0, "rev": 0}]
    environ = node.node.realtime.sio.get_environ(sid)
    assert environ["HTTP_COOKIE"] == cookie
    assert "HTTP_USER_AGENT" not in environ and "HTTP_ACCEPT_LANGUAGE" not in environ
    assert "aiohttp.request" not in environ
    # Leaving the namespace and joining it again on the same Engine.IO session still
    # authenticates with the cookie the session kept.
    await client.send("41")
    await eventually(lambda: not node.node.realtime.connections)
    again = await client.join()
    assert node.node.realtime.connections[again].identity.user_id == "42"
    await client.close()


async def test_jwt_node_refuses_an_expired_token(start_node, connect, sqlite_url) -> None:
    node = await start_node(node_settings(demo=False, store_url=sqlite_url, jwt_secret=SECRET))
    expired = jwt.encode({"sub": "42", "exp": int(time.time()) - 3600}, SECRET, "HS256")
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, auth={"token": expired})
    assert refused.value.error["data"] == {"code": "unauthorized"}


async def test_session_cookie_node_accepts_the_apps_flask_cookie(
    start_node, connect, sqlite_url
) -> None:
    app = Flask(__name__)
    app.secret_key = SECRET

    @app.post("/login")
    def login() -> str:
        session["user_id"] = 7
        return "ok"

    with app.test_client() as client:
        client.post("/login")
        cookie = client.get_cookie("session")
    assert cookie is not None
    node = await start_node(node_settings(demo=False, store_url=sqlite_url, session_secret=SECRET))
    device = await connect(node, headers={"Cookie": f"other=1; session={cookie.value}"})
    await device.wait_count(0)
    assert node.node.realtime.connections[device.sio.get_sid()].identity.user_id == "7"
    payload, _, signature = cookie.value.partition(".")
    forged = payload.replace(payload[1], "A" if payload[1] != "A" else "B", 1) + "." + signature
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, headers={"Cookie": f"session={forged}"})
    assert refused.value.error["data"] == {"code": "unauthorized"}


async def test_forward_node_asks_the_application(start_node, connect, sqlite_url) -> None:
    async def whoami(request: web.Request) -> web.Response:
        if request.headers.get("Cookie") == "sid=good":
            return web.json_response({"user_id": 9, "device_id": "laptop"})
        return web.json_response({"error": "no"}, status=401)

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        node = await start_node(
            node_settings(
                demo=False, store_url=sqlite_url, auth_url=f"http://127.0.0.1:{port}/whoami"
            )
        )
        device = await connect(node, headers={"Cookie": "sid=good"})
        await device.wait_count(0)
        identity = node.node.realtime.connections[device.sio.get_sid()].identity
        assert (identity.user_id, identity.device_id) == ("9", "laptop")
        with pytest.raises(ConnectRefused) as refused:
            await connect(node, headers={"Cookie": "sid=bad"})
        assert refused.value.error["data"] == {"code": "unauthorized"}
    finally:
        await runner.cleanup()


async def test_forward_node_says_unavailable_when_the_app_is_down(
    start_node, connect, sqlite_url
) -> None:
    from .support.ports import free_port

    node = await start_node(
        node_settings(
            demo=False, store_url=sqlite_url, auth_url=f"http://127.0.0.1:{free_port()}/x"
        )
    )
    with pytest.raises(ConnectRefused) as refused:
        await connect(node, headers={"Cookie": "sid=good"})
    assert refused.value.error == {"message": "unavailable", "data": {"code": "unavailable"}}


def app_origin_only(sqlite_url: str) -> Settings:
    """A JWT node that lets browsers on https://app.example.com connect, and no other."""
    return node_settings(
        demo=False,
        store_url=sqlite_url,
        jwt_secret=SECRET,
        allowed_origins=("https://app.example.com",),
    )


async def test_foreign_origin_is_refused(start_node, connect, sqlite_url) -> None:
    node = await start_node(app_origin_only(sqlite_url))
    good = {"token": token("42")}
    with pytest.raises(ConnectRefused):
        await connect(node, auth=good, headers={"Origin": "https://evil.example.com"})
    # Case and a trailing slash do not matter; no Origin at all is not a browser.
    device = await connect(node, auth=good, headers={"Origin": "https://APP.example.com/"})
    await device.wait_count(0)
    plain = await connect(node, auth=good)
    await plain.wait_count(0)


async def test_without_allowed_origins_only_the_same_origin_connects(
    start_node, connect, sqlite_url
) -> None:
    node = await start_node(node_settings(demo=False, store_url=sqlite_url, jwt_secret=SECRET))
    good = {"token": token("42")}
    with pytest.raises(ConnectRefused):
        await connect(node, auth=good, headers={"Origin": "https://elsewhere.example.com"})
    device = await connect(node, auth=good, headers={"Origin": node.url})
    await device.wait_count(0)


async def test_a_refused_origin_is_logged_and_counted(
    start_node, connect, sqlite_url, caplog
) -> None:
    """The browser shows only a failed connection: the node says which origin and why."""
    caplog.set_level(logging.INFO, logger="pns_sio")
    node = await start_node(app_origin_only(sqlite_url))
    with pytest.raises(ConnectRefused):
        await connect(node, auth={"token": token("42")}, headers={"Origin": "https://x.example"})
    assert "refused a connection from origin 'https://x.example'" in caplog.text
    assert "PNS_ALLOWED_ORIGINS" in caplog.text
    assert node.metric("pns_connects_total", outcome="origin_refused") == 1


async def test_a_users_devices_share_the_count(node, connect, http) -> None:
    phone = await connect(node, "42")
    laptop = await connect(node, "42")
    other = await connect(node, "7")
    await phone.wait_count(0)
    await notify(http, node, "42")
    await phone.wait_count(1)
    await laptop.wait_count(1)
    await other.wait_count(0)
    assert other.count_events() == [{"count": 0, "rev": 0}]
