"""What each ``pns serve`` flag means and its default: the table of docs/configuration.md.

``pns serve --help`` prints these; tests/test_settings.py fails when this table and
the documentation page differ.
"""

from __future__ import annotations

# setting -> (default, meaning), Markdown as on the page
FLAG_HELP: dict[str, tuple[str, str]] = {
    "host": (
        "`127.0.0.1`",
        "address to listen on (`0.0.0.0` to serve a network)",
    ),
    "port": (
        "`8080`",
        "port (`PORT` is what Procfile platforms set)",
    ),
    "store_url": (
        "`sqlite:///pns.db`",
        (
            "`sqlite:///path.db`, or `mongodb://…` / `mongodb+srv://…` (database from the "
            "URL path, default `pns`; collection `notifications`). A SQLite path after "
            "`sqlite:///` is relative to the working directory; four slashes "
            "(`sqlite:////var/lib/pns/pns.db`) make it absolute; missing directories are "
            "created, readable by their owner only; the node logs the absolute path when "
            "it is ready. MongoDB writes wait for a majority (`w=majority`) unless the "
            "URL says otherwise (`?w=1`)"
        ),
    ),
    "redis_url": (
        "unset",
        (
            "unset: one node, in-process manager. `redis://`, `rediss://` (TLS) or "
            "`redis+sentinel://host1:26379,host2:26379/0/service`: many nodes through "
            "`socketio.AsyncRedisManager`. `redis+cluster://[:password@]host1:7000,"
            "host2:7000`: a Redis Cluster (seed nodes), with `PNS_ROUTING=routed`; "
            "user channels are shard channels (`SPUBLISH`/`SSUBSCRIBE`)"
        ),
    ),
    "redis_channel": (
        "`socketio`",
        "pub/sub channel; nodes and publishers must agree",
    ),
    "routing": (
        "`broadcast`",
        (
            "`broadcast`: every node hears every message on one channel. `routed`: a "
            "user's messages go on the user's own channel (`<channel>#user:<id>`), heard "
            "only by the nodes holding that user's devices (docs/scaling.md); nodes and "
            "publishers must agree"
        ),
    ),
    "route_linger": (
        "`15`",
        (
            "routed mode: seconds a node stays subscribed to a user's channel after the "
            "user's last device left it (a reconnecting page does not churn subscriptions)"
        ),
    ),
    "allowed_origins": (
        "unset",
        (
            "comma-separated origins (`https://app.example.com`) allowed to open a "
            "connection from a browser; unset = same origin only. Compared "
            "case-insensitively, without a trailing slash"
        ),
    ),
    "api_token": (
        "unset",
        (
            "bearer token of the HTTP API; several, comma-separated, are all accepted (to "
            "replace a token: add the new one, move the applications over, remove the old "
            "one); unset = the API is off (outside demo mode). Each at least 32 bytes, or "
            "`pns serve` stops. Wrong tokens are limited per client address (10, then 1 a "
            "second: `429`)"
        ),
    ),
    "ack_timeout": (
        "`30`",
        (
            "seconds a device has to acknowledge a batch; after that nothing is marked "
            "and the batch comes again"
        ),
    ),
    "store_timeout": (
        "`5`",
        "seconds a store call may take before the answer is `unavailable`",
    ),
    "ping_interval": (
        "`25`",
        "Engine.IO ping interval, seconds",
    ),
    "ping_timeout": (
        "`20`",
        "seconds without a pong before a connection is dropped",
    ),
    "connect_timeout": (
        "`45`",
        (
            "seconds an Engine.IO session may stay open without joining the namespace "
            "(Socket.IO's default); every session spends a handshake of its address's "
            "budget when it opens"
        ),
    ),
    "max_message_bytes": (
        "`65536`",
        "largest Socket.IO message accepted from a client",
    ),
    "max_body_bytes": (
        "`1048576`",
        "largest HTTP API request body (`413` beyond)",
    ),
    "max_notification_bytes": (
        "`16384`",
        "largest `data` of one notification, as compact JSON (`400` beyond)",
    ),
    "retention_days": (
        "`90`",
        (
            "seen notifications older than this are deleted (a TTL index on MongoDB; on "
            "SQLite an hourly pass in short transactions of 5,000 rows, so writes go on "
            "meanwhile); unseen ones never are"
        ),
    ),
    "shutdown_grace": (
        "`10`",
        (
            "on SIGTERM: seconds fetches in flight get to be acknowledged before clients "
            "are told to reconnect elsewhere"
        ),
    ),
    "log_level": (
        "`INFO`",
        "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL` (any case)",
    ),
    "event_loop": (
        "`auto`",
        (
            "`auto` (uvloop when installed: it is a dependency except on Windows), "
            "`uvloop`, `asyncio`"
        ),
    ),
    "demo_public": (
        "off",
        (
            "let demo mode bind to a non-loopback address; without it, demo mode refuses "
            "to start on one"
        ),
    ),
    "demo": (
        "off",
        (
            'demo mode: anyone connects as any user (`auth: {"user_id": …}`), every '
            "origin is allowed, the HTTP API needs no token. Logs a loud warning. Never "
            "in production"
        ),
    ),
    "event_rate": (
        "`10`",
        "events a second one connection may send (a token bucket)",
    ),
    "event_burst": (
        "`20`",
        "events a connection may send at once before the rate applies",
    ),
    "max_connections_per_user": (
        "`20`",
        "connections one user may hold on one node",
    ),
    "handshake_rate": (
        "`10`",
        "connection attempts a second per client address",
    ),
    "handshake_burst": (
        "`50`",
        "connection attempts per client address at once",
    ),
    "api_rate": (
        "`500`",
        "HTTP API requests a second per API token (`429` beyond, with `Retry-After`)",
    ),
    "api_burst": (
        "`1000`",
        "HTTP API requests per token at once",
    ),
    "trusted_proxies": (
        "unset",
        (
            "comma-separated addresses or networks of your reverse proxies; only from "
            "them is `X-Forwarded-For` believed for the client address"
        ),
    ),
    "max_queued_frames": (
        "`1000`",
        "a client whose unsent frames pass this many is dropped (it stopped reading)",
    ),
    "auth": (
        "inferred",
        "`jwt`, `session` or `forward`",
    ),
    "jwt_secret": (
        "unset",
        (
            "HMAC secret (HS256 unless `PNS_JWT_ALGORITHM` says HS384/HS512); at least 32 "
            "bytes, or `pns serve` stops"
        ),
    ),
    "jwt_previous_secret": (
        "unset",
        (
            "the HMAC secret before `PNS_JWT_SECRET`, still accepted (a token whose "
            "signature fails with the current secret is tried with it): rotate by making "
            "the new secret current and the old one previous, then unset it once the old "
            "tokens have expired. At least 32 bytes"
        ),
    ),
    "jwt_public_key": (
        "unset",
        (
            "PEM public key (RS256 for RSA, ES256/384/512 for EC keys, unless "
            "`PNS_JWT_ALGORITHM` says otherwise); `\\n` in the value is read as a newline"
        ),
    ),
    "jwt_algorithm": (
        "by key",
        ("the one algorithm accepted; tokens with any other `alg` (including `none`) are refused"),
    ),
    "jwt_audience": (
        "unset",
        "required `aud` when set",
    ),
    "jwt_issuer": (
        "unset",
        "required `iss` when set",
    ),
    "jwt_cookie": (
        "unset",
        "cookie that carries the token, when the handshake has no `auth: {token}`",
    ),
    "jwt_allow_no_exp": (
        "`false`",
        (
            "accept JWTs without `exp` (they never expire; `pns serve` warns at start). "
            "Refused by default"
        ),
    ),
    "session_secret": (
        "unset",
        (
            "the application's Flask `SECRET_KEY`: PNS reads Flask's default signed "
            "session cookie. Whatever its length (it must equal the app's); under 32 "
            "bytes `pns serve` warns"
        ),
    ),
    "session_cookie": (
        "`session`",
        "the session cookie's name",
    ),
    "session_user_key": (
        "`user_id`",
        "key of the user id in the session (`_user_id` with Flask-Login)",
    ),
    "session_max_age": (
        "`2678400`",
        ("seconds a session cookie stays valid (Flask's `PERMANENT_SESSION_LIFETIME`, 31 days)"),
    ),
    "auth_url": (
        "unset",
        (
            "forward mode: the application's endpoint PNS calls (GET) with the "
            'handshake\'s `Cookie` and `Authorization`; a `200 {"user_id": …, "device_id": '
            "…}` accepts, 4xx refuses, anything else answers `unavailable`"
        ),
    ),
    "auth_cache_ttl": (
        "`10`",
        "seconds a forward-mode answer is reused for the same credentials",
    ),
    "auth_timeout": (
        "`5`",
        "seconds PNS waits for the application's auth endpoint",
    ),
}
