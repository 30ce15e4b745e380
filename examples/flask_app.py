"""A minimal Flask application that uses PNS.

It logs a user in with Flask's own session cookie, serves a page with the PNS
browser client, and creates notifications with ``SyncPublisher``. PNS nodes
read the same cookie (``PNS_SESSION_SECRET`` = this app's ``SECRET_KEY``).

    export PNS_STORE_URL=sqlite:///pns.db PNS_REDIS_URL=redis://127.0.0.1:6379/0
    export SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
    export PNS_URL=http://127.0.0.1:8080
    PNS_SESSION_SECRET=$SECRET_KEY PNS_ALLOWED_ORIGINS=http://127.0.0.1:5000 pns serve &
    flask --app examples/flask_app run     # binds 127.0.0.1:5000
"""

from __future__ import annotations

import os

from flask import Flask, redirect, request, session

from pns_sio import SyncPublisher

PAGE = """<!doctype html><title>Flask + PNS</title>
<p>Signed in as {user}. Unseen: <b id="count">?</b></p>
<button id="notify">Notify me</button>
<script src="{pns}/pns-client.js"></script>
<script>
  const client = new PNS.PNSClient({{url: "{pns}", withCredentials: true}});
  client.onCount((n) => document.getElementById("count").textContent = n);
  // The page stays: the new count arrives through PNS.
  document.getElementById("notify").onclick = () => fetch("/notify", {{method: "POST"}});
</script>"""
MIN_SECRET_BYTES = 32  # what PNS wants of PNS_SESSION_SECRET


def create_app(publisher: SyncPublisher | None = None) -> Flask:
    app = Flask(__name__)
    secret = os.environ.get("SECRET_KEY", "")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SystemExit(f"SECRET_KEY: set it to at least {MIN_SECRET_BYTES} random bytes")
    app.secret_key = secret
    pns_url = os.environ.get("PNS_URL", "http://127.0.0.1:8080")
    publish = publisher or SyncPublisher.from_env()

    @app.post("/login")
    def login():  # type: ignore[no-untyped-def]
        session["user_id"] = request.form["user_id"]
        return redirect("/")

    @app.get("/")
    def page():  # type: ignore[no-untyped-def]
        if "user_id" not in session:
            return '<form method="post" action="/login"><input name="user_id"><button>Log in'
        return PAGE.format(user=session["user_id"], pns=pns_url)

    @app.post("/notify")
    def notify():  # type: ignore[no-untyped-def]
        notification_id = publish.notify(session["user_id"], {"text": "Hello from Flask"})
        return {"id": notification_id}, 201

    return app
