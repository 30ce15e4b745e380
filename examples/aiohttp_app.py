"""A minimal aiohttp application that uses PNS.

It logs a user in, hands the page a short-lived JWT for PNS, and creates
notifications with the asyncio ``Publisher``. PNS nodes verify the token
(``PNS_JWT_SECRET`` = this app's ``JWT_SECRET``).

    export PNS_STORE_URL=sqlite:///pns.db PNS_REDIS_URL=redis://127.0.0.1:6379/0
    export JWT_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
    export PNS_URL=http://127.0.0.1:8080
    PNS_JWT_SECRET=$JWT_SECRET PNS_ALLOWED_ORIGINS=http://127.0.0.1:8000 pns serve &
    python examples/aiohttp_app.py
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator

import jwt
from aiohttp import web

from pns_sio import Publisher

PUBLISHER = web.AppKey("publisher", Publisher)
PAGE = """<!doctype html><title>aiohttp + PNS</title>
<p>User {user}. Unseen: <b id="count">?</b></p>
<button id="notify">Notify me</button>
<script src="{pns}/pns-client.js"></script>
<script>
  const token = async () => (await (await fetch("/token?user={user}")).json()).token;
  const client = new PNS.PNSClient({{url: "{pns}", token}});
  client.onCount((n) => document.getElementById("count").textContent = n);
  // The page stays: the new count arrives through PNS.
  const notify = () => fetch("/notify?user={user}", {{method: "POST"}});
  document.getElementById("notify").onclick = notify;
</script>"""
MIN_SECRET_BYTES = 32  # what PNS requires of PNS_JWT_SECRET


def jwt_secret() -> str:
    """The secret shared with the PNS nodes: no default, and as long as PNS requires."""
    secret = os.environ.get("JWT_SECRET", "")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SystemExit(f"JWT_SECRET: set it to at least {MIN_SECRET_BYTES} random bytes")
    return secret


def token_for(user_id: str) -> str:
    """A 10-minute token; the PNS client asks for a fresh one on every reconnect."""
    now = int(time.time())
    claims = {"sub": user_id, "sid": uuid.uuid4().hex, "iat": now, "exp": now + 600}
    return jwt.encode(claims, jwt_secret(), "HS256")


async def page(request: web.Request) -> web.Response:
    # A real application takes the user from its own login, not the query string.
    user = request.query.get("user", "42")
    pns = os.environ.get("PNS_URL", "http://127.0.0.1:8080")
    return web.Response(text=PAGE.format(user=user, pns=pns), content_type="text/html")


async def token(request: web.Request) -> web.Response:
    return web.json_response({"token": token_for(request.query.get("user", "42"))})


async def notify(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    nid = await publisher.notify(request.query.get("user", "42"), {"text": "Hello from aiohttp"})
    return web.json_response({"id": nid}, status=201)


def create_app(publisher: Publisher | None = None) -> web.Application:
    app = web.Application()

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        app[PUBLISHER] = publisher or Publisher.from_env()
        yield
        await app[PUBLISHER].close()

    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/", page)
    app.router.add_get("/token", token)
    app.router.add_post("/notify", notify)
    return app


if __name__ == "__main__":
    jwt_secret()  # fails at start, not at the first token
    web.run_app(create_app(), host="127.0.0.1", port=8000)
