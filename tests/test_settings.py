"""Settings: environment and flags, clear one-line errors, documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pns_sio.cli import _parser, load_settings
from pns_sio.errors import SettingsError
from pns_sio.settings import _ENV, Settings

from .support.processes import run_pns

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
AUTH = {"PNS_JWT_SECRET": "x" * 32}


def settings_from(env: dict[str, str], *argv: str) -> Settings:
    return load_settings(_parser().parse_args(["serve", *argv]), env)


def test_every_setting_is_documented_with_its_flag() -> None:
    text = DOCS.read_text()
    for name, (_, variables) in _ENV.items():
        for variable in variables:
            assert f"`{variable}`" in text, f"{variable} is not in docs/configuration.md"
        assert f"`--{name.replace('_', '-')}`" in text, f"--{name} is not documented"


def _documented_rows() -> dict[str, tuple[str, str]]:
    """docs/configuration.md's table: setting -> (default, meaning)."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        if line.startswith("| `PNS_"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            name = cells[1].strip("`").lstrip("-").replace("-", "_")
            rows[name] = (cells[2], "|".join(cells[3:]))
    return rows


def test_every_flag_says_what_the_documentation_says() -> None:
    from pns_sio.settings_doc import FLAG_HELP

    assert _documented_rows() == FLAG_HELP, "pns_sio/settings_doc.py and the page differ"
    text = " ".join(run_pns("serve", "--help").stdout.split())
    assert "overrides PNS_" not in text
    # Each flag with its meaning's first words and its default.
    assert "--ack-timeout VALUE seconds a device has to acknowledge a batch" in text
    assert "(default: 30; variable: PNS_ACK_TIMEOUT)" in text
    assert "--demo demo mode: anyone connects as any user" in text


def test_pns_version() -> None:
    from pns_sio import __version__

    done = run_pns("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"pns {__version__}"


def test_defaults() -> None:
    settings = settings_from(AUTH)
    assert settings.store_url == "sqlite:///pns.db"
    assert settings.redis_url is None and not settings.multi_node
    assert settings.redis_channel == "socketio"
    assert settings.allowed_origins is None
    assert settings.ack_timeout == 30 and settings.store_timeout == 5
    assert settings.auth_mode == "jwt"
    assert not settings.demo


def test_flags_win_over_the_environment() -> None:
    settings = settings_from(
        {**AUTH, "PNS_ACK_TIMEOUT": "12", "PORT": "9000"}, "--ack-timeout", "3", "--port", "9001"
    )
    assert settings.ack_timeout == 3.0
    assert settings.port == 9001
    assert settings_from({**AUTH, "PORT": "9000"}).port == 9000
    assert settings_from({**AUTH, "PORT": "9000", "PNS_PORT": "9002"}).port == 9002


def test_allowed_origins_are_normalized() -> None:
    settings = settings_from(
        {**AUTH, "PNS_ALLOWED_ORIGINS": "https://App.Example.com/, http://localhost:3000"}
    )
    assert settings.allowed_origins == ("https://app.example.com", "http://localhost:3000")


def test_demo_binds_to_loopback_unless_told_otherwise() -> None:
    assert settings_from({}, "--demo").host == "127.0.0.1"
    with pytest.raises(SettingsError, match="--demo-public"):
        settings_from({}, "--demo", "--host", "0.0.0.0")
    with pytest.raises(SettingsError, match="--demo-public"):
        settings_from({"PNS_HOST": "192.0.2.10", "PNS_DEMO": "true"})
    public = settings_from({}, "--demo", "--demo-public", "--host", "0.0.0.0")
    assert public.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({**AUTH, "PNS_ACK_TIMEOUT": "soon"}, [], "PNS_ACK_TIMEOUT='soon'"),
        ({**AUTH, "PNS_STORE_TIMEOUT": "-1"}, [], "PNS_STORE_TIMEOUT='-1'"),
        ({**AUTH, "PNS_PORT": "99999"}, [], "PNS_PORT='99999'"),
        ({**AUTH}, ["--ack-timeout", "nan"], "--ack-timeout='nan'"),
        ({**AUTH, "PNS_STORE_URL": "postgres://x"}, [], "PNS_STORE_URL='postgres://x'"),
        ({**AUTH, "PNS_REDIS_URL": "http://x"}, [], "PNS_REDIS_URL='http://x'"),
        ({**AUTH, "PNS_ROUTING": "sharded"}, [], "PNS_ROUTING='sharded'"),
        ({**AUTH, "PNS_ROUTE_LINGER": "0"}, [], "PNS_ROUTE_LINGER='0'"),
        (
            {**AUTH, "PNS_REDIS_URL": "redis+cluster://127.0.0.1:7000"},
            [],
            "redis+cluster://… takes PNS_ROUTING=routed",
        ),
        ({**AUTH, "PNS_ALLOWED_ORIGINS": "app.example.com"}, [], "PNS_ALLOWED_ORIGINS"),
        ({}, [], "no authentication configured"),
        ({**AUTH, "PNS_SESSION_SECRET": "y"}, [], "ambiguous"),
        ({"PNS_AUTH": "session"}, [], "PNS_AUTH='session' needs PNS_SESSION_SECRET"),
        ({**AUTH, "PNS_AUTH": "ldap"}, [], "PNS_AUTH='ldap'"),
        ({**AUTH, "PNS_JWT_ALGORITHM": "none"}, [], "PNS_JWT_ALGORITHM='none'"),
        ({**AUTH, "PNS_EVENT_LOOP": "trio"}, [], "PNS_EVENT_LOOP='trio'"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env, argv, message) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings_from(env, *argv)


def test_pns_serve_refuses_to_start_with_one_line_on_stderr(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pns_sio", "serve"],
        env={"PNS_ACK_TIMEOUT": "soon", "PNS_JWT_SECRET": "x" * 32, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pns: PNS_ACK_TIMEOUT='soon': expected a positive number of seconds"
    ]
    assert not (tmp_path / "pns.db").exists()
