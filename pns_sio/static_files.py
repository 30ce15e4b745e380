"""The browser client, served by every node: ``/pns-client.js`` and its source map.

The bundle is built from ``clients/js`` and shipped inside the package
(``pns_sio/static``), so a node needs no Node.js. Responses carry an ETag and
``Cache-Control: no-cache``: browsers revalidate, so a node upgrade reaches
every page at its next load, and an unchanged bundle costs a 304.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from aiohttp import web

# URL path -> (file in pns_sio/static, content type)
CLIENT_FILES = {
    "/pns-client.js": ("pns-client.js", "text/javascript"),
    "/pns-client.js.map": ("pns-client.js.map", "application/json"),
}


class StaticFile:
    """One packaged file, read at the first request and kept in memory."""

    def __init__(self, name: str, content_type: str) -> None:
        self.name = name
        self.content_type = content_type
        self._body: bytes | None = None
        self._etag = ""

    def _load(self) -> bytes | None:
        if self._body is None:
            path = resources.files("pns_sio").joinpath("static", self.name)
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                return None  # a source checkout without the built bundle
            self._etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self._body = body
        return self._body

    async def handle(self, request: web.Request) -> web.Response:
        body = self._load()
        if body is None:
            raise web.HTTPNotFound(text=f"{self.name} is not built: run `make js-bundle`")
        headers = {"ETag": self._etag, "Cache-Control": "no-cache"}
        if self._etag in _etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=body, content_type=self.content_type, charset="utf-8", headers=headers
        )


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def add_static_routes(app: web.Application) -> None:
    """Serve the JS client bundle and its source map (GET and HEAD)."""
    for url, (name, content_type) in CLIENT_FILES.items():
        app.router.add_get(url, StaticFile(name, content_type).handle)
