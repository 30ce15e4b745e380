"""pytest plugin: the MongoDB that store tests run against (DESIGN.md, "Tests").

Registered by ``pytest_plugins = ["tests.support.mongo"]`` in tests/conftest.py.
The session fixture ``mongo_url`` gives a ``mongodb://`` URL naming a
database of its own, from the first of:

1. ``PNS_TEST_MONGODB_URL``: a real mongod (the database is dropped at the end);
2. ``.venv-mongo/bin/python`` with mongoeco installed: mongoeco's wire-protocol
   server, started as a subprocess on a free port and stopped at the end;
3. neither: the tests that use it are skipped.

PyMongo is never mocked: the tests always talk to a server over TCP.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

ENV_URL = "PNS_TEST_MONGODB_URL"
ROOT = Path(__file__).resolve().parents[2]
MONGO_VENV = ROOT / ".venv-mongo"
MONGO_PYTHON = MONGO_VENV / "bin" / "python"
WIRE_SERVER = Path(__file__).with_name("mongo_wire_server.py")
SKIP_REASON = "MongoDB tests need .venv-mongo (make test creates it) or PNS_TEST_MONGODB_URL"

START_DEADLINE = 30.0  # seconds for the wire server to print its ready line and answer
STOP_DEADLINE = 10.0
POLL_INTERVAL = 0.05
READY = re.compile(r"^ready mongoeco \S+ (mongodb://\S+)$", re.MULTILINE)


def mongoeco_version() -> str | None:
    """mongoeco's version in .venv-mongo, read from its metadata (no 3.13 needed here)."""
    if not MONGO_PYTHON.exists():
        return None
    paths = [str(p) for p in MONGO_VENV.glob("lib/python3*/site-packages")]
    dist = next(iter(metadata.distributions(name="mongoeco", path=paths)), None)
    return None if dist is None else dist.version


def _redacted(url: str) -> str:
    """``url`` without its user and password, fit for the test report."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(ENV_URL)
    if url:
        return f"MongoDB: real mongod at {_redacted(url)} ({ENV_URL})"
    version = mongoeco_version()
    if version is not None:
        return f"MongoDB: mongoeco wire server {version} (stand-in)"
    return "MongoDB: not available, tests skipped"


def _ping(url: str, timeout: float) -> bool:
    ms = max(1, round(timeout * 1000))
    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms) as client:
        try:
            client.admin.command("ping")
        except PyMongoError:
            return False
    return True


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, after: int = 0) -> str:
    """The server's base URL once it printed its ready line (past ``after``) and answers."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"mongoeco wire server exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            )
        ready = READY.search(log.read_text()[after:])
        if ready and _ping(ready.group(1), timeout=1.0):
            return ready.group(1)
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(
        f"mongoeco wire server not ready in {START_DEADLINE:.0f}s:\n{log.read_text()[-4000:]}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # By its pid only: SIGTERM lets the server close its sockets cleanly.
    proc.terminate()
    try:
        proc.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _drop_databases(url: str, database: str) -> None:
    """Drop ``database`` and every ``<database>_*`` a test derived from it."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=10_000) as client:
        for name in client.list_database_names():
            if name == database or name.startswith(database + "_"):
                client.drop_database(name)


class MongoProcess:
    """One mongoeco wire server we started; stop() and start() again keep its port.

    Data lives in the server's memory: a restart loses it (tests that restart
    one say so).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.base_url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "wire_server.log"

    def start(self) -> str:
        with self.log.open("ab") as out:
            # Port 0 the first time: the server binds a free port itself and
            # prints it, so no other process can take it in between.
            self.proc = subprocess.Popen(
                [str(MONGO_PYTHON), str(WIRE_SERVER), "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.base_url = _wait_ready(self.proc, self.log, after=self.log.stat().st_size)
        self.port = int(self.base_url.rsplit(":", 1)[1])
        return self.base_url

    def freeze(self) -> None:
        """SIGSTOP, by its pid: the sockets stay open and nothing answers (a hung database)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server could not end
            _stop(self.proc)
            self.proc = None
        # A traceback means the stand-in misbehaved: show it.
        if self.log.exists() and "Traceback" in self.log.read_text():
            sys.stderr.write(f"mongoeco wire server log:\n{self.log.read_text()[-4000:]}\n")


@pytest.fixture
def mongo_server(tmp_path: Path) -> Iterator[MongoProcess]:
    """A wire server of this test's own, to take down and bring back (outage tests)."""
    if mongoeco_version() is None:
        pytest.skip(SKIP_REASON)
    server = MongoProcess(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to a MongoDB database of this session's own; skips when none is available.

    Tests wanting a database each should name it ``<this database>_<suffix>``:
    on a real server, those are dropped with it at the end of the session.
    """
    database = f"pns_test_{os.getpid()}_{secrets.token_hex(4)}"
    url = os.environ.get(ENV_URL)
    if url:
        test_url = _with_database(url, database)
        try:
            yield test_url
        finally:
            _drop_databases(test_url, database)
        return
    if mongoeco_version() is None:
        pytest.skip(SKIP_REASON)
    server = MongoProcess(tmp_path_factory.mktemp("mongoeco"))
    try:
        yield _with_database(server.start(), database)
    finally:
        server.stop()
