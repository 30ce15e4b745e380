"""PROTOCOL "Connection", step 2: the node authenticates with the application's system.

Real parts only: tokens signed by PyJWT with keys made here, cookies set by a
real Flask app, and a real aiohttp auth endpoint on a loopback port.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any

import flask
import itsdangerous
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup

from pns_sio.auth import Authenticator, Handshake, Identity, build_authenticator
from pns_sio.auth.demo import DemoAuthenticator
from pns_sio.auth.forward import ForwardAuthenticator
from pns_sio.auth.jwt import LEEWAY, JWTAuthenticator
from pns_sio.auth.session import FlaskTaggedJSON, SessionCookieAuthenticator
from pns_sio.errors import AuthUnavailable, SettingsError, Unauthorized
from pns_sio.settings import Settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def hs(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "42", "exp": int(time.time()) + 600}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to make: alg none, or HS256 keyed with a PEM."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    sig = b"" if hmac_key is None else hmac.digest(hmac_key, signing_input.encode(), "sha256")
    return f"{signing_input}.{b64url(sig)}"


def pem(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def hmac_node(**settings: Any) -> JWTAuthenticator:
    return JWTAuthenticator(Settings(jwt_secret=SECRET, **settings))


async def refused(authenticator: Authenticator, handshake: Handshake) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        await authenticator.authenticate(handshake)
    return info.value


# --- JWT -------------------------------------------------------------------------------


async def test_jwt_sub_is_the_user_sid_the_device_exp_the_expiry() -> None:
    exp = int(time.time()) + 600
    token = hs(claims(sub="42", sid="laptop", jti="j1", exp=exp))
    identity = await hmac_node().authenticate(Handshake(auth={"token": token}))
    assert identity == Identity(user_id="42", device_id="laptop", expires_at=float(exp))


async def test_jwt_integer_sub_is_its_decimal_string() -> None:
    identity = await hmac_node().authenticate(Handshake(auth={"token": hs(claims(sub=42))}))
    assert identity.user_id == "42"


async def test_jwt_device_is_jti_without_sid() -> None:
    identity = await hmac_node().authenticate(Handshake(auth={"token": hs(claims(jti="j-7"))}))
    assert identity.device_id == "j-7"


async def test_jwt_device_without_sid_or_jti_is_a_stable_hash_of_the_token() -> None:
    node = hmac_node(jwt_allow_no_exp=True)
    token, other = hs(claims(exp=None)), hs(claims(sub="43", exp=None))
    first = await node.authenticate(Handshake(auth={"token": token}))
    again = await node.authenticate(Handshake(auth={"token": token}))
    second = await node.authenticate(Handshake(auth={"token": other}))
    assert first.device_id == again.device_id != second.device_id
    assert token not in first.device_id
    assert first.expires_at is None


async def test_jwt_rs256_is_verified_with_the_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    node = JWTAuthenticator(Settings(jwt_public_key=pem(rsa_key.public_key())))
    token = jwt.encode(claims(sub="7"), rsa_key, algorithm="RS256")
    assert (await node.authenticate(Handshake(auth={"token": token}))).user_id == "7"


async def test_jwt_es256_is_inferred_from_an_ec_public_key(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    node = JWTAuthenticator(Settings(jwt_public_key=pem(ec_key.public_key())))
    token = jwt.encode(claims(sub="8"), ec_key, algorithm="ES256")
    assert (await node.authenticate(Handshake(auth={"token": token}))).user_id == "8"


async def test_jwt_public_key_with_escaped_newlines_is_accepted(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    one_line = pem(rsa_key.public_key()).replace("\n", "\\n")
    node = JWTAuthenticator(Settings(jwt_public_key=one_line))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert (await node.authenticate(Handshake(auth={"token": token}))).user_id == "42"


async def test_jwt_expired_token_is_refused() -> None:
    token = hs(claims(exp=int(time.time()) - 60))
    await refused(hmac_node(), Handshake(auth={"token": token}))


async def test_jwt_expired_within_the_leeway_is_accepted() -> None:
    token = hs(claims(exp=int(time.time()) - 1))
    assert LEEWAY >= 2
    assert (await hmac_node().authenticate(Handshake(auth={"token": token}))).user_id == "42"


async def test_jwt_with_nbf_in_the_future_is_refused() -> None:
    token = hs(claims(nbf=int(time.time()) + 60))
    await refused(hmac_node(), Handshake(auth={"token": token}))


async def test_jwt_with_wrong_signature_is_refused() -> None:
    token = hs(claims(), key="another-secret-that-is-long-enough-for-hs256")
    await refused(hmac_node(), Handshake(auth={"token": token}))


async def test_jwt_with_alg_none_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    token = handmade({"alg": "none", "typ": "JWT"}, claims(), hmac_key=None)
    rsa_node = JWTAuthenticator(Settings(jwt_public_key=pem(rsa_key.public_key())))
    for node in (hmac_node(), rsa_node):
        await refused(node, Handshake(auth={"token": token}))


async def test_jwt_hs256_keyed_with_the_public_key_is_refused_by_an_rs256_node(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    public_pem = pem(rsa_key.public_key())
    token = handmade({"alg": "HS256", "typ": "JWT"}, claims(), hmac_key=public_pem.encode())
    node = JWTAuthenticator(Settings(jwt_public_key=public_pem, jwt_algorithm="RS256"))
    await refused(node, Handshake(auth={"token": token}))


async def test_jwt_rs256_token_is_refused_by_an_hs256_node(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    await refused(hmac_node(), Handshake(auth={"token": token}))


async def test_jwt_audience_is_enforced_when_configured() -> None:
    node = hmac_node(jwt_audience="pns")
    ok = await node.authenticate(Handshake(auth={"token": hs(claims(aud="pns"))}))
    assert ok.user_id == "42"
    await refused(node, Handshake(auth={"token": hs(claims(aud="billing"))}))
    await refused(node, Handshake(auth={"token": hs(claims())}))


async def test_jwt_audience_is_ignored_when_not_configured() -> None:
    token = hs(claims(aud="billing"))
    assert (await hmac_node().authenticate(Handshake(auth={"token": token}))).user_id == "42"


async def test_jwt_issuer_is_enforced_when_configured() -> None:
    node = hmac_node(jwt_issuer="https://app.example")
    token = hs(claims(iss="https://app.example"))
    assert (await node.authenticate(Handshake(auth={"token": token}))).user_id == "42"
    await refused(node, Handshake(auth={"token": hs(claims(iss="https://evil.example"))}))
    await refused(node, Handshake(auth={"token": hs(claims())}))


@pytest.mark.parametrize("sub", [None, "", True, 4.2, ["42"], {"id": 42}])
async def test_jwt_without_a_usable_sub_is_refused(sub: Any) -> None:
    payload = claims()
    del payload["sub"]
    if sub is not None:
        payload["sub"] = sub
    await refused(hmac_node(), Handshake(auth={"token": hs(payload)}))


@pytest.mark.parametrize("sub", ["   ", "u" * 257], ids=["blank", "257-characters"])
async def test_a_user_id_nothing_could_notify_is_refused_at_connect(sub: str) -> None:
    """The HTTP API and the publishers take user ids of 1 to 256 characters with
    something in them; a device under any other id would never hear of anything."""
    await refused(hmac_node(), Handshake(auth={"token": hs(claims(sub=sub))}))
    await refused(DemoAuthenticator(), Handshake(auth={"user_id": sub}))
    longest = hs(claims(sub="u" * 256))
    assert (await hmac_node().authenticate(Handshake(auth={"token": longest}))).user_id == "u" * 256


async def test_jwt_is_read_from_the_configured_cookie() -> None:
    node = hmac_node(jwt_cookie="access_token")
    handshake = Handshake(headers={"cookie": f"theme=dark; access_token={hs(claims())}"})
    assert (await node.authenticate(handshake)).user_id == "42"


async def test_jwt_cookie_is_ignored_when_no_cookie_is_configured() -> None:
    handshake = Handshake(headers={"cookie": f"access_token={hs(claims())}"})
    await refused(hmac_node(), handshake)


@pytest.mark.parametrize(
    "auth", [None, {}, {"token": ""}, {"token": 42}, {"token": "not.a.jwt"}, {"token": "x"}]
)
async def test_jwt_missing_or_malformed_token_is_refused(auth: Any) -> None:
    await refused(hmac_node(), Handshake(auth=auth))


async def test_jwt_refusal_says_only_unauthorized_and_logs_the_reason_not_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pns_sio.auth")
    token = hs(claims(exp=int(time.time()) - 60))
    error = await refused(hmac_node(), Handshake(auth={"token": token}))
    assert str(error) == "unauthorized"
    assert error.code == "unauthorized"
    assert "ExpiredSignatureError" in caplog.text
    assert token not in caplog.text
    assert token.split(".")[1] not in caplog.text


async def test_jwt_key_that_does_not_fit_the_algorithm_stops_startup(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    with pytest.raises(SettingsError, match="PNS_JWT_ALGORITHM"):
        JWTAuthenticator(Settings(jwt_public_key=pem(ec_key.public_key()), jwt_algorithm="RS256"))
    with pytest.raises(SettingsError, match="PNS_JWT_PUBLIC_KEY"):
        JWTAuthenticator(Settings(jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope"))


# --- Flask session cookie -----------------------------------------------------------------


class BackdatedSigner(itsdangerous.TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 3600


class BackdatedSessionInterface(SecureCookieSessionInterface):
    """Flask's own interface, signing as if an hour ago."""

    def get_signing_serializer(self, app: flask.Flask) -> itsdangerous.URLSafeTimedSerializer:
        serializer = super().get_signing_serializer(app)
        assert serializer is not None
        serializer.signer = BackdatedSigner
        return serializer


def flask_login_cookie(
    values: dict[str, Any],
    *,
    secret: str = SECRET,
    cookie_name: str = "session",
    session_interface: SecureCookieSessionInterface | None = None,
) -> str:
    """The session cookie a real Flask app sets on a request that stores ``values``."""
    app = flask.Flask("pns_test_app")
    app.secret_key = secret
    app.config["SESSION_COOKIE_NAME"] = cookie_name
    if session_interface is not None:
        app.session_interface = session_interface

    @app.get("/login")
    def login() -> str:
        flask.session.update(values)
        return "logged in"

    response = app.test_client().get("/login")
    jar: SimpleCookie = SimpleCookie(response.headers["Set-Cookie"])
    return jar[cookie_name].value


def session_node(**settings: Any) -> SessionCookieAuthenticator:
    return SessionCookieAuthenticator(Settings(session_secret=SECRET, **settings))


def with_cookie(value: str, name: str = "session") -> Handshake:
    return Handshake(headers={"cookie": f"theme=dark; {name}={value}"})


async def test_flask_session_cookie_names_the_user() -> None:
    cookie = flask_login_cookie({"user_id": 42})
    identity = await session_node().authenticate(with_cookie(cookie))
    assert identity.user_id == "42"
    assert identity.expires_at is None
    again = await session_node().authenticate(with_cookie(cookie))
    assert again.device_id == identity.device_id  # a hash of the cookie's signature
    assert cookie.rsplit(".", 1)[1] not in identity.device_id


async def test_flask_session_with_a_string_user_id_and_tagged_values_is_read() -> None:
    cookie = flask_login_cookie(
        {"user_id": "u-1", "seen": (1, 2), "token": b"\x00\xff", "at": datetime.now(UTC)}
    )
    assert (await session_node().authenticate(with_cookie(cookie))).user_id == "u-1"


async def test_flask_long_session_is_compressed_and_still_read() -> None:
    cookie = flask_login_cookie({"user_id": "7", "cart": ["the same item"] * 300})
    assert cookie.startswith(".")  # itsdangerous marks a zlib-compressed payload
    assert (await session_node().authenticate(with_cookie(cookie))).user_id == "7"


async def test_flask_login_user_key_and_session_identifier_name_user_and_device() -> None:
    session_id = hashlib.sha512(b"127.0.0.1|test-agent").hexdigest()
    cookie = flask_login_cookie({"_user_id": "7", "_id": session_id, "_fresh": True})
    identity = await session_node(session_user_key="_user_id").authenticate(with_cookie(cookie))
    assert identity == Identity(user_id="7", device_id=session_id)


async def test_flask_session_cookie_name_is_configurable() -> None:
    cookie = flask_login_cookie({"user_id": 5}, cookie_name="app_session")
    node = session_node(session_cookie="app_session")
    assert (await node.authenticate(with_cookie(cookie, name="app_session"))).user_id == "5"
    await refused(node, with_cookie(cookie))


async def test_flask_session_tampered_cookie_is_refused() -> None:
    cookie = flask_login_cookie({"user_id": 42})
    forged = ("f" if cookie[0] != "f" else "g") + cookie[1:]
    await refused(session_node(), with_cookie(forged))


async def test_flask_session_cookie_with_another_users_payload_is_refused() -> None:
    mine = flask_login_cookie({"user_id": 1})
    theirs = flask_login_cookie({"user_id": 2})
    spliced = theirs.split(".")[0] + "." + ".".join(mine.split(".")[1:])
    await refused(session_node(), with_cookie(spliced))


async def test_flask_session_signed_with_another_secret_is_refused() -> None:
    cookie = flask_login_cookie({"user_id": 42}, secret="some-other-apps-secret-key-0123456789")
    await refused(session_node(), with_cookie(cookie))


async def test_flask_session_older_than_max_age_is_refused() -> None:
    cookie = flask_login_cookie({"user_id": 42}, session_interface=BackdatedSessionInterface())
    assert (await session_node().authenticate(with_cookie(cookie))).user_id == "42"
    await refused(session_node(session_max_age=60.0), with_cookie(cookie))


@pytest.mark.parametrize("values", [{}, {"cart": [1]}, {"user_id": ""}, {"user_id": True}])
async def test_flask_session_without_a_usable_user_id_is_refused(values: dict[str, Any]) -> None:
    await refused(session_node(), with_cookie(flask_login_cookie(values)))


@pytest.mark.parametrize("cookie", ["", "garbage", "eyJ1c2VyX2lkIjo0Mn0.Zx.sig", ".eJzz"])
async def test_flask_session_missing_or_malformed_cookie_is_refused(cookie: str) -> None:
    headers = {"cookie": f"session={cookie}"} if cookie else {}
    await refused(session_node(), Handshake(headers=headers))


@pytest.mark.parametrize(
    "value",
    [
        {"a": (1, "two", [3])},
        {"b": b"\x00binary\xff"},
        {"m": Markup("<b>bold</b>")},
        {"u": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        {"d": datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)},
        {"di": {" t": "a dict whose only key looks like a tag"}},
        {"nested": [{"x": (b"1",)}, {" u": "not a uuid tag inside a 2-key dict", "k": 1}]},
    ],
)
def test_tagged_json_decodes_what_flask_encodes(value: dict[str, Any]) -> None:
    encoded = TaggedJSONSerializer().dumps(value)
    assert FlaskTaggedJSON().loads(encoded) == TaggedJSONSerializer().loads(encoded) == value


# --- forward auth ------------------------------------------------------------------------


class AuthEndpoint:
    """The application's auth endpoint: answers by the session cookie or bearer token."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        who = request.cookies.get("session") or request.headers.get("Authorization", "")
        who = who.removeprefix("Bearer ")
        if who == "alice":
            response = web.json_response({"user_id": "alice", "device_id": "alice-laptop"})
            response.set_cookie("tracker", "alice")
            return response
        if who in ("carol", "bob"):
            return web.json_response({"user_id": 7 if who == "carol" else "bob"})
        if who == "slow":
            self.arrived.set()
            await self.gate.wait()
            return web.json_response({"user_id": "slow"})
        statuses = {"expired": 401, "banned": 403, "gone": 404, "broken": 500, "busy": 503}
        if who in statuses:
            return web.json_response({"error": who}, status=statuses[who])
        if who == "redirect":
            raise web.HTTPFound("/login-page")
        bodies = {"html": "<html>please log in</html>", "nouser": '{"device_id": "d"}'}
        bodies |= {
            "bool": '{"user_id": true}',
            "list": '["alice"]',
            "baddev": '{"user_id": "a", "device_id": []}',
        }
        return web.Response(text=bodies.get(who, "{}"), content_type="application/json")


@pytest.fixture
async def endpoint(aiohttp_server: Any) -> AsyncIterator[tuple[AuthEndpoint, str]]:
    state = AuthEndpoint()
    app = web.Application()
    app.router.add_get("/auth", state.handle)
    app.router.add_get("/login-page", state.handle)
    server = await aiohttp_server(app)
    yield state, str(server.make_url("/auth"))
    state.gate.set()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def forward() -> AsyncIterator[Callable[..., ForwardAuthenticator]]:
    made: list[ForwardAuthenticator] = []

    def make(
        url: str, *, clock: Clock | None = None, cache_size: int = 10_000, **settings: Any
    ) -> ForwardAuthenticator:
        authenticator = ForwardAuthenticator(
            Settings(auth_url=url, **settings),
            clock=clock or Clock(),
            cache_size=cache_size,
        )
        made.append(authenticator)
        return authenticator

    yield make
    for authenticator in made:
        await authenticator.close()


def session(value: str, **headers: str) -> Handshake:
    return Handshake(headers={"cookie": f"session={value}", **headers})


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/auth"


async def test_forward_returns_the_apps_answer_and_sends_only_the_credentials(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    handshake = session(
        "alice", origin="https://app.example", **{"x-secret": "no", "user-agent": "browser"}
    )
    identity = await forward(url).authenticate(handshake)
    assert identity == Identity(user_id="alice", device_id="alice-laptop")
    [seen] = state.requests
    assert seen["Cookie"] == "session=alice"
    assert "Authorization" not in seen
    assert "Origin" not in seen
    assert "X-Secret" not in seen
    assert seen.get("User-Agent") != "browser"


async def test_forward_integer_user_and_default_device_from_the_credentials(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    _, url = endpoint
    first = await forward(url).authenticate(session("carol"))
    again = await forward(url).authenticate(session("carol"))
    assert first.user_id == "7"
    assert first.device_id == again.device_id
    assert "carol" not in first.device_id


async def test_forward_handshake_token_is_sent_as_a_bearer_token(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    identity = await forward(url).authenticate(Handshake(auth={"token": "bob"}))
    assert identity.user_id == "bob"
    assert state.requests[0]["Authorization"] == "Bearer bob"
    assert "Cookie" not in state.requests[0]


async def test_forward_authorization_header_wins_over_the_handshake_token(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    handshake = Handshake(headers={"authorization": "Bearer bob"}, auth={"token": "alice"})
    assert (await forward(url).authenticate(handshake)).user_id == "bob"
    assert state.requests[0]["Authorization"] == "Bearer bob"


async def test_forward_without_credentials_is_refused_without_asking_the_app(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    node = forward(url)
    for handshake in (Handshake(), Handshake(headers={"origin": "x"}), Handshake(auth={})):
        await refused(node, handshake)
    await refused(node, Handshake(auth={"token": "bob\r\nX-Injected: 1"}))
    assert state.requests == []


@pytest.mark.parametrize("who", ["expired", "banned", "gone", "redirect"])
async def test_forward_4xx_and_redirects_are_unauthorized(
    who: str, endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    await refused(forward(url), session(who))
    assert len(state.requests) == 1  # a redirect to the login page is not followed


@pytest.mark.parametrize("who", ["html", "nouser", "bool", "list", "baddev", "empty"])
async def test_forward_malformed_200_body_is_unauthorized(
    who: str, endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    _, url = endpoint
    await refused(forward(url), session(who))


@pytest.mark.parametrize("who", ["broken", "busy"])
async def test_forward_5xx_is_unavailable_and_not_cached(
    who: str, endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    node = forward(url)
    for _ in range(2):
        with pytest.raises(AuthUnavailable):
            await node.authenticate(session(who))
    assert len(state.requests) == 2


async def test_forward_unreachable_endpoint_is_unavailable(
    forward: Callable[..., ForwardAuthenticator],
) -> None:
    with pytest.raises(AuthUnavailable):
        await forward(closed_port_url()).authenticate(session("alice"))


async def test_forward_slow_endpoint_is_unavailable_after_the_timeout(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    _, url = endpoint
    with pytest.raises(AuthUnavailable):
        await forward(url, auth_timeout=0.2).authenticate(session("slow"))


async def test_forward_answers_are_cached_for_the_ttl(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    clock = Clock()
    node = forward(url, clock=clock, auth_cache_ttl=10.0)
    for _ in range(3):
        assert (await node.authenticate(session("alice"))).user_id == "alice"
    assert len(state.requests) == 1
    clock.now += 10.5
    assert (await node.authenticate(session("alice"))).user_id == "alice"
    assert len(state.requests) == 2


async def test_forward_refusals_are_cached_too(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    clock = Clock()
    node = forward(url, clock=clock, auth_cache_ttl=10.0)
    for _ in range(3):
        await refused(node, session("expired"))
    assert len(state.requests) == 1
    clock.now += 10.5
    await refused(node, session("expired"))
    assert len(state.requests) == 2


async def test_forward_cache_is_bounded_and_evicts_the_oldest(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    node = forward(url, cache_size=2)
    for who in ("alice", "carol", "bob", "bob", "carol"):
        await node.authenticate(session(who))
    assert len(state.requests) == 3
    await node.authenticate(session("alice"))  # evicted by bob
    assert len(state.requests) == 4


async def test_forward_concurrent_identical_lookups_share_one_request(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    node = forward(url)
    lookups = [asyncio.create_task(node.authenticate(session("slow"))) for _ in range(50)]
    # Every lookup task ran before the shared request was sent: all 50 are waiting.
    await asyncio.wait_for(state.arrived.wait(), 5)
    lookups[0].cancel()  # a client giving up does not cancel the lookup for the others
    state.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*lookups[1:]), 5)
    assert {r.user_id for r in results} == {"slow"}
    assert len({r.device_id for r in results}) == 1
    assert len(state.requests) == 1
    assert lookups[0].cancelled()


async def test_forward_does_not_carry_cookies_the_app_sets_to_other_users(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    state, url = endpoint
    # By name: aiohttp's default cookie jar would keep cookies from a host name, not an IP.
    node = forward(url.replace("127.0.0.1", "localhost"))
    await node.authenticate(session("alice"))  # answered with Set-Cookie: tracker=alice
    await node.authenticate(Handshake(headers={"authorization": "Bearer bob"}))
    assert "Cookie" not in state.requests[1]


async def test_forward_never_logs_credentials(
    endpoint: tuple[AuthEndpoint, str],
    forward: Callable[..., ForwardAuthenticator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pns_sio.auth")
    _, url = endpoint
    for who in ("expired", "broken", "html"):
        with pytest.raises((Unauthorized, AuthUnavailable)):
            await forward(url).authenticate(session(who, authorization=f"Bearer tok-{who}"))
    with pytest.raises(AuthUnavailable):
        await forward(closed_port_url()).authenticate(session("expired"))
    assert "HTTP 401" in caplog.text
    assert "HTTP 500" in caplog.text
    for secret in ("session=", "tok-", "Bearer"):
        assert secret not in caplog.text


async def test_forward_after_close_is_unavailable_and_close_is_idempotent(
    endpoint: tuple[AuthEndpoint, str], forward: Callable[..., ForwardAuthenticator]
) -> None:
    _, url = endpoint
    node = forward(url)
    await node.authenticate(session("alice"))
    await node.close()
    await node.close()
    with pytest.raises(AuthUnavailable):
        await node.authenticate(session("carol"))


# --- demo mode ----------------------------------------------------------------------------


async def test_demo_accepts_the_claimed_user_and_device() -> None:
    identity = await DemoAuthenticator().authenticate(
        Handshake(auth={"user_id": "u1", "device_id": "d1"})
    )
    assert identity == Identity(user_id="u1", device_id="d1")


async def test_demo_integer_user_id_is_its_decimal_string() -> None:
    assert (await DemoAuthenticator().authenticate(Handshake(auth={"user_id": 42}))).user_id == "42"


async def test_demo_device_is_random_per_connection_without_a_device_id() -> None:
    node = DemoAuthenticator()
    devices = {
        (await node.authenticate(Handshake(auth={"user_id": "u1", "device_id": d}))).device_id
        for d in (None, "", 5, None)
    }
    assert len(devices) == 4


@pytest.mark.parametrize("user_id", ["", "x" * 257, True, 4.5, [], {}])
async def test_demo_invalid_user_id_is_refused(user_id: Any) -> None:
    await refused(DemoAuthenticator(), Handshake(auth={"user_id": user_id}))


async def test_demo_user_id_of_256_characters_is_accepted() -> None:
    identity = await DemoAuthenticator().authenticate(Handshake(auth={"user_id": "x" * 256}))
    assert identity.user_id == "x" * 256


@pytest.mark.parametrize("auth", [None, {}, "u1", {"token": hs(claims())}])
async def test_demo_without_user_id_or_fallback_is_refused(auth: Any) -> None:
    await refused(DemoAuthenticator(), Handshake(auth=auth))


async def test_demo_without_user_id_delegates_to_the_fallback() -> None:
    node = DemoAuthenticator(fallback=hmac_node())
    identity = await node.authenticate(Handshake(auth={"token": hs(claims(sid="s1"))}))
    assert identity.user_id == "42"
    assert identity.device_id == "s1"
    await refused(node, Handshake(auth={"token": hs(claims(), key="x" * 40)}))
    await refused(node, Handshake())


async def test_build_authenticator_in_demo_mode_wraps_the_configured_one() -> None:
    node = build_authenticator(Settings(demo=True, jwt_secret=SECRET))
    assert isinstance(node, DemoAuthenticator)
    assert (await node.authenticate(Handshake(auth={"user_id": "u9"}))).user_id == "u9"
    assert (await node.authenticate(Handshake(auth={"token": hs(claims())}))).user_id == "42"
    await node.close()


async def test_build_authenticator_in_demo_mode_without_auth_accepts_only_claims() -> None:
    node = build_authenticator(Settings(demo=True))
    assert isinstance(node, DemoAuthenticator)
    await refused(node, Handshake(auth={"token": hs(claims())}))


def test_build_authenticator_picks_the_configured_backend() -> None:
    assert isinstance(build_authenticator(Settings(jwt_secret=SECRET)), JWTAuthenticator)
    assert isinstance(
        build_authenticator(Settings(session_secret=SECRET)), SessionCookieAuthenticator
    )
    assert isinstance(
        build_authenticator(Settings(auth_url="http://127.0.0.1:1/auth")), ForwardAuthenticator
    )
