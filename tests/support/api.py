"""The HTTP API as the tests' application uses it: its token, and creating a notification."""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp

API_TOKEN = "test-api-token-0123456789abcdef0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class HasURL(Protocol):
    @property
    def url(self) -> str: ...


async def notify(
    http: aiohttp.ClientSession, node: HasURL, user: str, data: dict[str, Any] | None = None
) -> str:
    """Create a notification through the node's HTTP API; return its id."""
    async with http.post(
        f"{node.url}/api/v1/notifications",
        json={"user_id": user, "data": data or {"text": "hi"}},
        headers=AUTH,
    ) as response:
        body = await response.json()
        assert response.status == 201, body
        return str(body["id"])
