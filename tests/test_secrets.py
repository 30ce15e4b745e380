"""Tokens, secrets and files: what an operator's mistake or a guesser can and cannot do."""

from __future__ import annotations

import asyncio
import logging
import stat

import jwt
import pytest

from pns_sio.auth import Handshake
from pns_sio.auth.jwt import JWTAuthenticator
from pns_sio.cli import main as pns_main
from pns_sio.errors import SettingsError, Unauthorized
from pns_sio.settings import Settings, redact_url, warnings_for
from pns_sio.store import open_store

from .support.api import API_TOKEN
from .support.processes import run_pns

SECRET = "secrets-tests-secret-0123456789abcdef"


async def test_a_jwt_without_exp_is_refused_unless_allowed() -> None:
    token = jwt.encode({"sub": "42"}, SECRET, "HS256")
    with pytest.raises(Unauthorized):
        await JWTAuthenticator(Settings(jwt_secret=SECRET)).authenticate(
            Handshake(auth={"token": token})
        )
    allowing = JWTAuthenticator(Settings(jwt_secret=SECRET, jwt_allow_no_exp=True))
    identity = await allowing.authenticate(Handshake(auth={"token": token}))
    assert identity.user_id == "42" and identity.expires_at is None
    allowing_settings = Settings(jwt_secret=SECRET, jwt_allow_no_exp=True)
    assert any("PNS_JWT_ALLOW_NO_EXP" in w for w in warnings_for(allowing_settings))


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PNS_JWT_SECRET", "short-secret"), ("PNS_API_TOKEN", "x" * 31)],
)
def test_a_short_secret_stops_pns_serve_with_one_line(variable, value) -> None:
    done = run_pns("serve", env={"PNS_JWT_SECRET": SECRET, variable: value, "PNS_PORT": "1"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert variable in done.stderr and "32" in done.stderr
    assert value not in done.stderr


def test_a_short_session_secret_is_a_warning_not_a_refusal() -> None:
    settings = Settings(session_secret="dev")
    assert any("PNS_SESSION_SECRET" in w for w in warnings_for(settings))
    assert warnings_for(Settings(session_secret="s" * 32)) == []


async def test_wrong_api_tokens_are_rate_limited_per_address(start_node, http) -> None:
    node = await start_node(demo=False, jwt_secret=SECRET)
    statuses = []
    for _ in range(12):
        async with http.post(
            f"{node.url}/api/v1/notifications",
            json={"user_id": "42", "data": {}},
            headers={"Authorization": "Bearer guess-0123456789abcdef0123456789abcdef"},
        ) as response:
            statuses.append(response.status)
    assert statuses == [401] * 10 + [429] * 2
    # Guessing from this address is slowed down; the right token is too, until it cools.
    async with http.post(
        f"{node.url}/api/v1/notifications",
        json={"user_id": "42", "data": {}},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
    assert (await node.node.store.unseen("42")).count == 0


def test_no_password_of_a_url_is_shown() -> None:
    store = "mongodb://pns:hunter2-store@db.internal:27017/pns"
    redis = "redis://:hunter2-redis@cache.internal:6379/0"
    settings = Settings(demo=True, store_url=store, redis_url=redis)
    assert "hunter2" not in repr(settings)
    assert redact_url(store) == "mongodb://pns:***@db.internal:27017/pns"
    assert redact_url("redis://cache:6379") == "redis://cache:6379"
    for bad in ("postgres://u:hunter2-store@h/db", "http://u:hunter2-redis@h/"):
        with pytest.raises(SettingsError) as refused:
            Settings(demo=True, store_url=bad)
        assert "hunter2" not in str(refused.value)
        with pytest.raises(SettingsError) as refused:
            Settings(demo=True, redis_url=bad)
        assert "hunter2" not in str(refused.value)


async def test_no_password_reaches_the_log_when_the_store_is_down(caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    url = "mongodb://pns:hunter2-down@127.0.0.1:1/pns?serverSelectionTimeoutMS=300"
    code = await asyncio.to_thread(
        pns_main,
        ["serve", "--demo", "--store-url", url, "--store-timeout", "0.5", "--port", "0"],
    )
    assert code == 1
    assert "hunter2" not in capsys.readouterr().err
    assert not [r for r in caplog.records if "hunter2" in r.getMessage()]


async def test_pns_notify_reads_its_token_from_a_file(node, connect, tmp_path) -> None:
    device = await connect(node, "42")
    token_file = tmp_path / "token"
    token_file.write_text(API_TOKEN + "\n")
    args = ["notify", "--url", node.url, "--user", "42", "--data", "{}"]
    done = await asyncio.to_thread(run_pns, *args, "--token-file", str(token_file))
    assert done.returncode == 0, done.stderr
    await device.wait_count(1)


async def test_the_sqlite_files_are_readable_by_their_owner_only(tmp_path) -> None:
    path = tmp_path / "made-by-pns" / "deeper" / "pns.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await store.create("42", {"text": "private"})
        for made in (path, path.with_name("pns.db-wal"), path.with_name("pns.db-shm")):
            assert stat.S_IMODE(made.stat().st_mode) == 0o600, made
        for directory in (path.parent, path.parent.parent):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    finally:
        await store.close()


OLD_SECRET = "secrets-tests-old-secret-0123456789abcd"


async def test_a_jwt_secret_rotates_with_the_previous_one_still_accepted() -> None:
    def token(key: str, sub: str) -> str:
        return jwt.encode({"sub": sub, "exp": 2**40}, key, "HS256")

    rotating = JWTAuthenticator(Settings(jwt_secret=SECRET, jwt_previous_secret=OLD_SECRET))
    assert (
        await rotating.authenticate(Handshake(auth={"token": token(SECRET, "1")}))
    ).user_id == "1"
    assert (
        await rotating.authenticate(Handshake(auth={"token": token(OLD_SECRET, "2")}))
    ).user_id == "2"
    with pytest.raises(Unauthorized):
        await rotating.authenticate(Handshake(auth={"token": token("x" * 40, "3")}))
    # Once the previous secret is unset, its tokens are refused.
    current = JWTAuthenticator(Settings(jwt_secret=SECRET))
    with pytest.raises(Unauthorized):
        await current.authenticate(Handshake(auth={"token": token(OLD_SECRET, "2")}))
    with pytest.raises(SettingsError, match="PNS_JWT_PREVIOUS_SECRET is 5 bytes"):
        Settings(jwt_secret=SECRET, jwt_previous_secret="short")


async def test_several_api_tokens_are_accepted_at_once(start_node, http) -> None:
    second = "second-api-token-0123456789abcdef012345"
    node = await start_node(demo=False, jwt_secret=SECRET, api_token=f"{API_TOKEN}, {second}")
    for token, status in ((API_TOKEN, 201), (second, 201), ("w" * 40, 401)):
        async with http.post(
            f"{node.url}/api/v1/notifications",
            json={"user_id": "42", "data": {}},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == status, await response.text()
    with pytest.raises(SettingsError, match="PNS_API_TOKEN has a token that is 5 bytes"):
        Settings(api_token=f"{API_TOKEN},short")
