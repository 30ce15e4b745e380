"""``pns notify``: create notifications from a shell or a script.

Two ways, both ending in the same record and signal: through the store and
Redis named by ``PNS_STORE_URL`` / ``PNS_REDIS_URL`` (the Python publisher), or
through a node's HTTP API with ``--url``. Input is checked whole before
anything is written: bad input stores nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from . import schemas
from .errors import InvalidRequest, PNSError, SettingsError
from .settings import publisher_options

CHUNK = schemas.MAX_BATCH

Item = tuple[str, dict[str, Any]]


class CLIError(Exception):
    """A one-line error for stderr, with the exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def _parse_data(raw: str, where: str, max_bytes: int) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CLIError(f"{where}: data is not valid JSON ({exc})") from None
    try:
        return schemas.notification_data(data, max_bytes)
    except InvalidRequest as exc:
        raise CLIError(f"{where}: {exc.message}") from None


def _user(value: Any, where: str) -> str:
    try:
        return schemas.user_id(value)
    except InvalidRequest as exc:
        raise CLIError(f"{where}: {exc.message}") from None


def read_items(args: argparse.Namespace, lines: Iterable[str], max_bytes: int) -> list[Item]:
    """The notifications to create, all checked; raises ``CLIError`` on the first bad one."""
    if args.user is not None:
        if args.data is None:
            raise CLIError("--user needs --data (a JSON object)")
        return [(_user(args.user, "--user"), _parse_data(args.data, "--data", max_bytes))]
    if args.data is not None:
        raise CLIError("--data needs --user (or give JSON lines on stdin instead)")
    items: list[Item] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise CLIError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(record, dict) or set(record) != {"user_id", "data"}:
            raise CLIError(f'{where}: expected {{"user_id": ..., "data": {{...}}}}')
        try:
            data = schemas.notification_data(record["data"], max_bytes)
        except InvalidRequest as exc:
            raise CLIError(f"{where}: {exc.message}") from None
        items.append((_user(record["user_id"], where), data))
    if not items:
        raise CLIError("nothing to send: give --user and --data, or JSON lines on stdin")
    return items


async def _through_store(items: list[Item], options: dict[str, Any]) -> list[str]:
    from .publisher import Publisher

    async with Publisher(**options) as publisher:
        if len(items) == 1:
            return [await publisher.notify(*items[0])]
        ids: list[str] = []
        for start in range(0, len(items), CHUNK):
            ids += await publisher.notify_many(list(items[start : start + CHUNK]))
        return ids


async def _through_http(items: list[Item], url: str, token: str | None) -> list[str]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = url.rstrip("/")
    ids: list[str] = []
    async with aiohttp.ClientSession(headers=headers) as http:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            body: dict[str, Any]
            if len(items) == 1:
                path, body = "/api/v1/notifications", {"user_id": chunk[0][0], "data": chunk[0][1]}
            else:
                path = "/api/v1/notifications/batch"
                body = {"notifications": [{"user_id": u, "data": d} for u, d in chunk]}
            try:
                async with http.post(base + path, json=body) as response:
                    answer = await response.json(content_type=None)
                    status = response.status
            except (aiohttp.ClientError, ValueError) as exc:
                raise CLIError(f"cannot reach {base}: {exc}", status=1) from None
            if status != 201:
                error = answer.get("error", {}) if isinstance(answer, dict) else {}
                raise CLIError(
                    f"{base} answered {status}: {error.get('message', answer)}", status=1
                )
            ids += [answer["id"]] if "id" in answer else answer["ids"]
    return ids


def _token(args: argparse.Namespace, env: Any) -> str | None:
    """The API token: --token, --token-file, PNS_API_TOKEN, PNS_API_TOKEN_FILE, in order."""
    if args.token:
        return str(args.token)
    path = args.token_file
    if not path and env.get("PNS_API_TOKEN"):
        return str(env["PNS_API_TOKEN"])
    path = path or env.get("PNS_API_TOKEN_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip() or None
    except OSError as exc:
        raise CLIError(f"cannot read the API token file {path}: {exc.strerror}") from None


def run_notify(args: argparse.Namespace) -> int:
    env = os.environ
    try:
        options = publisher_options(env)
        lines = sys.stdin if args.user is None else []
        items = read_items(args, lines, options["max_notification_bytes"])
        if args.url:
            token = _token(args, env)
            ids = asyncio.run(_through_http(items, args.url, token))
        else:
            if not options["redis_url"]:
                raise CLIError(
                    "PNS_REDIS_URL is not set: no node would hear of a record stored here. "
                    "For a single embedded node use --url http://<node> (and PNS_API_TOKEN)"
                )
            ids = asyncio.run(_through_store(items, options))
    except CLIError as exc:
        print(f"pns: {exc}", file=sys.stderr)
        return exc.status
    except SettingsError as exc:
        print(f"pns: {exc}", file=sys.stderr)
        return 2
    except PNSError as exc:
        print(f"pns: {exc.message}", file=sys.stderr)
        return 1
    for nid in ids:
        print(nid)
    return 0
