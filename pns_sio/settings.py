"""Settings: read once from the environment and flags, validated, then passed down.

Nothing else in PNS reads ``os.environ``. A bad value stops start-up with a
``SettingsError`` naming the variable and the value.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, get_args
from urllib.parse import urlsplit

from .errors import SettingsError

# The choices of a setting are its type; the tuples the checks use are read from it.
AuthMode = Literal["jwt", "session", "forward"]
EventLoop = Literal["auto", "uvloop", "asyncio"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
HMACAlgorithm = Literal["HS256", "HS384", "HS512"]
AsymmetricAlgorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"]
JWTAlgorithm = HMACAlgorithm | AsymmetricAlgorithm

AUTH_MODES: tuple[AuthMode, ...] = get_args(AuthMode)
EVENT_LOOPS: tuple[EventLoop, ...] = get_args(EventLoop)
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
JWT_ASYMMETRIC_ALGORITHMS: tuple[AsymmetricAlgorithm, ...] = get_args(AsymmetricAlgorithm)
JWT_HMAC_ALGORITHMS: tuple[HMACAlgorithm, ...] = get_args(HMACAlgorithm)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a node. See docs/configuration.md for the variables.

    Values from the environment and flags arrive as text; ``__post_init__`` refuses
    (``SettingsError``) any outside the choices of ``auth``, ``jwt_algorithm``,
    ``log_level`` and ``event_loop``, so those fields hold only what their types
    say. ``log_level`` may be given in any case and is kept in upper case.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    # Out of repr: a URL may carry a password.
    store_url: str = field(default="sqlite:///pns.db", repr=False)
    redis_url: str | None = field(default=None, repr=False)
    redis_channel: str = "socketio"
    # broadcast: one channel every node hears; routed: a channel per user (sio/routed.py)
    routing: str = "broadcast"
    route_linger: float = 15.0
    # None: same-origin only. Entries are normalized (lower case, no trailing slash).
    allowed_origins: tuple[str, ...] | None = None
    auth: AuthMode | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    # The secret before the current one, still accepted while tokens signed with it live.
    jwt_previous_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = field(default=None, repr=False)
    jwt_algorithm: JWTAlgorithm | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_cookie: str | None = None
    # A JWT without exp would be valid forever: refused unless the operator says so.
    jwt_allow_no_exp: bool = False
    session_secret: str | None = field(default=None, repr=False)
    session_cookie: str = "session"
    session_user_key: str = "user_id"
    session_max_age: float = 31 * 24 * 3600.0
    auth_url: str | None = field(default=None, repr=False)
    auth_cache_ttl: float = 10.0
    auth_timeout: float = 5.0
    api_token: str | None = field(default=None, repr=False)
    ack_timeout: float = 30.0
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    # A session that has not joined the namespace by then is closed (Socket.IO's default).
    connect_timeout: float = 45.0
    store_timeout: float = 5.0
    max_message_bytes: int = 64 * 1024
    max_body_bytes: int = 1024 * 1024
    max_notification_bytes: int = 16 * 1024
    retention_days: float = 90.0
    # Rate limits, per node; 0 turns one off.
    event_rate: float = 10.0
    event_burst: float = 20.0
    max_connections_per_user: int = 20
    handshake_rate: float = 10.0
    handshake_burst: float = 50.0
    api_rate: float = 500.0
    api_burst: float = 1000.0
    trusted_proxies: tuple[str, ...] = ()
    max_queued_frames: int = 1000
    shutdown_grace: float = 10.0
    demo: bool = False
    demo_public: bool = False
    log_level: LogLevel = "INFO"
    event_loop: EventLoop = "auto"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def api_tokens(self) -> tuple[str, ...]:
        """The HTTP API's tokens: ``PNS_API_TOKEN`` may list several, comma-separated, so
        a token can be replaced without a moment when no token works."""
        if self.api_token is None:
            return ()
        return tuple(t.strip() for t in self.api_token.split(",") if t.strip())

    @property
    def multi_node(self) -> bool:
        return self.redis_url is not None

    @property
    def auth_mode(self) -> AuthMode | None:
        """The authenticator in use: explicit ``auth``, else inferred, else None (demo)."""
        return self.auth or _inferred_auth(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``overrides`` (flags) win.

        Overrides whose value is None are ignored, so argparse defaults of
        None fall through to the environment.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (parse, variables) in _ENV.items():
            for var in variables:
                raw = env.get(var)
                if raw is not None and raw != "":
                    values[name] = _parse(var, raw, parse)
                    break
        for name, value in overrides.items():
            if name not in _FIELDS:
                raise SettingsError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        if values.get("demo") and "host" not in values:
            values["host"] = "127.0.0.1"
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


ROUTINGS = ("broadcast", "routed")


def normalize_origin(origin: str) -> str:
    """Origins compare case-insensitively and without a trailing slash."""
    return origin.strip().rstrip("/").lower()


def _seconds(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(normalize_origin(o) for o in raw.split(",") if o.strip())


def _text(raw: str) -> str:
    return raw


def _rate(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError
    return value


def _networks(raw: str) -> tuple[str, ...]:
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    for entry in entries:
        ipaddress.ip_network(entry, strict=False)  # ValueError names nothing; _parse does
    return entries


_EXPECTED: dict[Callable[[str], Any], str] = {
    _seconds: "a positive number of seconds",
    _port: "a port number 0-65535",
    _positive_int: "a positive whole number",
    _bool: "true or false",
    _origins: "comma-separated origins",
    _text: "text",
    _rate: "a number >= 0 (0 turns the limit off)",
    _count: "a whole number >= 0 (0 turns the limit off)",
    _networks: "comma-separated IP addresses or networks (10.0.0.0/8)",
}

# setting name -> (parser, environment variables in order of preference)
_ENV: dict[str, tuple[Callable[[str], Any], tuple[str, ...]]] = {
    "host": (_text, ("PNS_HOST",)),
    "port": (_port, ("PNS_PORT", "PORT")),
    "store_url": (_text, ("PNS_STORE_URL",)),
    "redis_url": (_text, ("PNS_REDIS_URL",)),
    "redis_channel": (_text, ("PNS_REDIS_CHANNEL",)),
    "routing": (_text, ("PNS_ROUTING",)),
    "route_linger": (_seconds, ("PNS_ROUTE_LINGER",)),
    "allowed_origins": (_origins, ("PNS_ALLOWED_ORIGINS",)),
    "auth": (_text, ("PNS_AUTH",)),
    "jwt_secret": (_text, ("PNS_JWT_SECRET",)),
    "jwt_previous_secret": (_text, ("PNS_JWT_PREVIOUS_SECRET",)),
    "jwt_public_key": (_text, ("PNS_JWT_PUBLIC_KEY",)),
    "jwt_algorithm": (_text, ("PNS_JWT_ALGORITHM",)),
    "jwt_audience": (_text, ("PNS_JWT_AUDIENCE",)),
    "jwt_issuer": (_text, ("PNS_JWT_ISSUER",)),
    "jwt_cookie": (_text, ("PNS_JWT_COOKIE",)),
    "jwt_allow_no_exp": (_bool, ("PNS_JWT_ALLOW_NO_EXP",)),
    "session_secret": (_text, ("PNS_SESSION_SECRET",)),
    "session_cookie": (_text, ("PNS_SESSION_COOKIE",)),
    "session_user_key": (_text, ("PNS_SESSION_USER_KEY",)),
    "session_max_age": (_seconds, ("PNS_SESSION_MAX_AGE",)),
    "auth_url": (_text, ("PNS_AUTH_URL",)),
    "auth_cache_ttl": (_seconds, ("PNS_AUTH_CACHE_TTL",)),
    "auth_timeout": (_seconds, ("PNS_AUTH_TIMEOUT",)),
    "api_token": (_text, ("PNS_API_TOKEN",)),
    "ack_timeout": (_seconds, ("PNS_ACK_TIMEOUT",)),
    "ping_interval": (_seconds, ("PNS_PING_INTERVAL",)),
    "ping_timeout": (_seconds, ("PNS_PING_TIMEOUT",)),
    "connect_timeout": (_seconds, ("PNS_CONNECT_TIMEOUT",)),
    "store_timeout": (_seconds, ("PNS_STORE_TIMEOUT",)),
    "max_message_bytes": (_positive_int, ("PNS_MAX_MESSAGE_BYTES",)),
    "max_body_bytes": (_positive_int, ("PNS_MAX_BODY_BYTES",)),
    "max_notification_bytes": (_positive_int, ("PNS_MAX_NOTIFICATION_BYTES",)),
    "retention_days": (_seconds, ("PNS_RETENTION_DAYS",)),
    "event_rate": (_rate, ("PNS_EVENT_RATE",)),
    "event_burst": (_rate, ("PNS_EVENT_BURST",)),
    "max_connections_per_user": (_count, ("PNS_MAX_CONNECTIONS_PER_USER",)),
    "handshake_rate": (_rate, ("PNS_HANDSHAKE_RATE",)),
    "handshake_burst": (_rate, ("PNS_HANDSHAKE_BURST",)),
    "api_rate": (_rate, ("PNS_API_RATE",)),
    "api_burst": (_rate, ("PNS_API_BURST",)),
    "trusted_proxies": (_networks, ("PNS_TRUSTED_PROXIES",)),
    "max_queued_frames": (_positive_int, ("PNS_MAX_QUEUED_FRAMES",)),
    "shutdown_grace": (_seconds, ("PNS_SHUTDOWN_GRACE",)),
    "demo": (_bool, ("PNS_DEMO",)),
    "demo_public": (_bool, ("PNS_DEMO_PUBLIC",)),
    "log_level": (_text, ("PNS_LOG_LEVEL",)),
    "event_loop": (_text, ("PNS_EVENT_LOOP",)),
}
_FIELDS = {f.name for f in dataclasses.fields(Settings)}


def env_variables(name: str) -> tuple[str, ...]:
    """The environment variables that set ``name`` (for error messages and docs)."""
    return _ENV[name][1]


PUBLISHER_SETTINGS = (
    "store_url",
    "redis_url",
    "redis_channel",
    "routing",
    "store_timeout",
    "max_notification_bytes",
)


def publisher_options(env: Mapping[str, str]) -> dict[str, Any]:
    """The publisher's keyword arguments from the server's variables (same names, same checks)."""
    defaults = Settings.__dataclass_fields__
    options: dict[str, Any] = {name: defaults[name].default for name in PUBLISHER_SETTINGS}
    for name in PUBLISHER_SETTINGS:
        parse, variables = _ENV[name]
        for var in variables:
            raw = env.get(var)
            if raw:
                options[name] = _parse(var, raw, parse)
                break
    return options


def parse_flag(name: str, raw: str) -> Any:
    """Parse a command-line flag's text for setting ``name`` as its variable would be."""
    parse = _ENV[name][0]
    return _parse("--" + name.replace("_", "-"), raw, parse)


SWITCHES = ("demo", "demo_public")


def flag_names() -> list[str]:
    """Settings that take a value on the command line (switches are separate)."""
    return [name for name in _ENV if name not in SWITCHES]


def _parse(var: str, raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"{var}={raw!r}: expected {_EXPECTED[parse]}") from None


def _var(name: str) -> str:
    return env_variables(name)[0]


def _inferred_auth(s: Settings) -> AuthMode | None:
    present = [mode for mode, given in _auth_settings_given(s).items() if given]
    return present[0] if len(present) == 1 else None


def _auth_settings_given(s: Settings) -> dict[AuthMode, bool]:
    """Which authentication modes have their settings present."""
    return {
        "jwt": bool(s.jwt_secret or s.jwt_public_key),
        "session": bool(s.session_secret),
        "forward": bool(s.auth_url),
    }


def _is_log_level(value: str) -> TypeGuard[LogLevel]:
    return value in LOG_LEVELS


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate(s: Settings) -> None:
    if s.demo and not s.demo_public and not _is_loopback(s.host):
        raise SettingsError(
            f"PNS_HOST={s.host!r}: demo mode lets anyone connect as any user, so it binds to "
            "loopback only; add --demo-public (PNS_DEMO_PUBLIC=true) to serve other addresses"
        )
    _validate_urls(s)
    _validate_auth(s)
    for name in (
        "ack_timeout",
        "ping_interval",
        "ping_timeout",
        "connect_timeout",
        "store_timeout",
        "route_linger",
    ):
        value = getattr(s, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise SettingsError(f"{_var(name)}={value!r}: expected a positive number of seconds")
    level = s.log_level.upper()
    if not _is_log_level(level):
        raise SettingsError(
            f"PNS_LOG_LEVEL={s.log_level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    if level != s.log_level:
        object.__setattr__(s, "log_level", level)  # frozen: set once, while validating
    if s.event_loop not in EVENT_LOOPS:
        raise SettingsError(f"PNS_EVENT_LOOP={s.event_loop!r}: expected auto, uvloop or asyncio")
    if s.allowed_origins is not None:
        for origin in s.allowed_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise SettingsError(
                    f"PNS_ALLOWED_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                )


def _validate_urls(s: Settings) -> None:
    if not s.store_url.startswith(("sqlite:///", "mongodb://", "mongodb+srv://")):
        raise SettingsError(
            f"PNS_STORE_URL={redact_url(s.store_url)!r}: expected sqlite:///path.db, mongodb:// "
            "or mongodb+srv://"
        )
    if s.store_url.startswith("sqlite:///") and len(s.store_url) == len("sqlite:///"):
        raise SettingsError("PNS_STORE_URL='sqlite:///': expected a file path after sqlite:///")
    if s.redis_url is not None and not s.redis_url.startswith(
        ("redis://", "rediss://", "redis+sentinel://", "redis+cluster://", "unix://")
    ):
        raise SettingsError(
            f"PNS_REDIS_URL={redact_url(s.redis_url)!r}: expected redis://, rediss://, "
            "redis+sentinel:// or redis+cluster://"
        )
    if not s.redis_channel:
        raise SettingsError("PNS_REDIS_CHANNEL='': expected a channel name")
    if s.routing not in ROUTINGS:
        raise SettingsError(f"PNS_ROUTING={s.routing!r}: expected broadcast or routed")
    if (
        s.redis_url is not None
        and s.redis_url.startswith("redis+cluster://")
        and s.routing != "routed"
    ):
        raise SettingsError(
            "PNS_REDIS_URL=redis+cluster://… takes PNS_ROUTING=routed: on a Redis Cluster "
            "each user's messages go to the shard of the user's channel"
        )
    if s.auth_url is not None and not s.auth_url.startswith(("http://", "https://")):
        raise SettingsError(
            f"PNS_AUTH_URL={redact_url(s.auth_url)!r}: expected an http:// or https:// URL"
        )


MIN_SECRET_BYTES = 32


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: for messages, logs and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def warnings_for(s: Settings) -> list[str]:
    """What ``pns serve`` warns about at start: allowed, but the operator should know."""
    found = []
    if s.jwt_allow_no_exp:
        found.append(
            "PNS_JWT_ALLOW_NO_EXP=true: a JWT without exp is accepted and never expires; "
            "a leaked token stays valid until PNS_JWT_SECRET changes"
        )
    if s.session_secret and len(s.session_secret.encode()) < MIN_SECRET_BYTES:
        found.append(
            f"PNS_SESSION_SECRET is {len(s.session_secret.encode())} bytes: it must equal the "
            f"application's own key, but a key under {MIN_SECRET_BYTES} bytes can be guessed"
        )
    return found


def _validate_secrets(s: Settings) -> None:
    secrets = [("jwt_secret", s.jwt_secret), ("jwt_previous_secret", s.jwt_previous_secret)]
    if s.api_token is not None:
        secrets += [("api_token", token) for token in s.api_tokens or ("",)]
    for name, value in secrets:
        if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
            several = name == "api_token" and len(s.api_tokens) > 1
            raise SettingsError(
                f"{_var(name)}{' has a token that' if several else ''} is "
                f"{len(value.encode())} bytes: use at least "
                f"{MIN_SECRET_BYTES} random bytes (e.g. python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')"
            )
    if s.jwt_previous_secret and not s.jwt_secret:
        raise SettingsError("PNS_JWT_PREVIOUS_SECRET needs PNS_JWT_SECRET (the current one)")


def _validate_auth(s: Settings) -> None:
    _validate_secrets(s)
    if s.auth is not None and s.auth not in AUTH_MODES:
        raise SettingsError(f"PNS_AUTH={s.auth!r}: expected one of jwt, session, forward")
    given = _auth_settings_given(s)
    if s.auth is None:
        present = [mode for mode, ok in given.items() if ok]
        if len(present) > 1:
            raise SettingsError(
                "authentication is ambiguous: settings for "
                + " and ".join(present)
                + " are both present; choose one with PNS_AUTH"
            )
        if not present and not s.demo:
            raise SettingsError(
                "no authentication configured: set PNS_JWT_SECRET, PNS_JWT_PUBLIC_KEY, "
                "PNS_SESSION_SECRET or PNS_AUTH_URL (or run with --demo for local trials)"
            )
    else:
        required = {
            "jwt": "PNS_JWT_SECRET or PNS_JWT_PUBLIC_KEY",
            "session": "PNS_SESSION_SECRET",
            "forward": "PNS_AUTH_URL",
        }[s.auth]
        if not given[s.auth]:
            raise SettingsError(f"PNS_AUTH={s.auth!r} needs {required}")
    if s.jwt_secret and s.jwt_public_key:
        raise SettingsError("PNS_JWT_SECRET and PNS_JWT_PUBLIC_KEY are both set: choose one")
    if s.jwt_algorithm is not None:
        allowed = JWT_HMAC_ALGORITHMS if s.jwt_secret else JWT_ASYMMETRIC_ALGORITHMS
        if s.jwt_algorithm not in allowed:
            raise SettingsError(
                f"PNS_JWT_ALGORITHM={s.jwt_algorithm!r}: expected one of {', '.join(allowed)}"
                + (" with PNS_JWT_SECRET" if s.jwt_secret else " with PNS_JWT_PUBLIC_KEY")
            )
