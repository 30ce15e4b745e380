"""Debian's nginx in front of test nodes, configured by the shipped docs/deploy/nginx.conf.

The site file runs as shipped: ``render_site`` changes only the values on the
lines it marks ``# @node``, ``# @listen``, ``# @cert`` and ``# @key``. A main
config of our own plays the part of Debian's /etc/nginx/nginx.conf: it keeps
everything nginx writes (pid, logs, temp files) in the test's directory, and
nginx in the foreground as one process (``daemon off``, ``master_process
off``), so stopping it by its pid leaves nothing behind. TLS is real, with a
throwaway self-signed certificate: clients connect with verification off.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .processes import stable_port

SHIPPED_SITE = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nginx.conf"
START_DEADLINE = 10.0
STOP_DEADLINE = 5.0
POLL_INTERVAL = 0.02
LOG_TAIL_CHARS = 4000
# Where Debian puts it: off a non-root user's PATH.
DEBIAN_NGINX = Path("/usr/sbin/nginx")

# `<indent><directive> <value><rest>  # @tag`; the value ends at a space or `;`.
MARKED = re.compile(r"^(\s*)(\S+)\s+([^\s;]+)(.*?)\s*#\s*@(\w+)\s*$")

# Plays Debian's /etc/nginx/nginx.conf; the shipped site goes in its http block.
MAIN_CONF = """\
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 512;
}}
http {{
    # Which node served each request: tests read it back (``requests()``).
    log_format pns_test '$remote_addr "$request" $status $upstream_addr';
    access_log {dir}/access.log pns_test;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/pns.conf;
}}
"""

ACCESS_LINE = re.compile(r'^(\S+) "(\S+) (\S+) [^"]*" (\d{3}) (.*)$')


class NginxStartError(RuntimeError):
    pass


def nginx_binary() -> str | None:
    """The nginx to run, or None when it is not installed."""
    found = shutil.which("nginx")
    if found is not None:
        return found
    return str(DEBIAN_NGINX) if DEBIAN_NGINX.is_file() else None


def render_site(text: str, values: Mapping[str, Sequence[str]]) -> str:
    """The site config with the values of its marked lines replaced.

    The first line marked ``# @tag`` is written once per item of
    ``values[tag]``, its value replaced and the rest of it kept
    (``server 10.0.0.11:8080 max_fails=1 ...`` keeps its parameters); the
    other lines marked with that tag are dropped. Raises ``ValueError`` when
    the file has a tag ``values`` lacks, or lacks one it has: the test would
    otherwise run something other than what is shipped.
    """
    seen: set[str] = set()
    out: list[str] = []
    for line in text.splitlines():
        match = MARKED.match(line)
        if match is None:
            if "# @" in line and not line.lstrip().startswith("#"):
                raise ValueError(f"a marked line the renderer cannot read: {line!r}")
            out.append(line)
            continue
        indent, directive, _, rest, tag = match.groups()
        if tag not in values:
            raise ValueError(f"no value for the lines marked # @{tag}")
        if tag not in seen:
            seen.add(tag)
            out.extend(f"{indent}{directive} {value}{rest}" for value in values[tag])
    missing = set(values) - seen
    if missing:
        raise ValueError(f"the site has no lines marked {sorted(missing)}")
    return "\n".join(out) + "\n"


def write_self_signed(cert: Path, key: Path) -> None:
    """A certificate for 127.0.0.1, valid for a day, and its key."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pns-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass(frozen=True, slots=True)
class Request:
    """One line of nginx's access log."""

    client: str
    method: str
    uri: str
    status: int
    upstream: str  # "127.0.0.1:8001", several comma-separated after a retry, "-" if none


class NginxProcess:
    """One nginx we started, in front of ``upstreams`` (``host:port`` of each node)."""

    def __init__(self, workdir: Path, upstreams: Sequence[str]) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (make test installs it)")
        self.binary = binary
        self.dir = workdir
        self.upstreams = list(upstreams)
        self.port = stable_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def write_config(self) -> Path:
        """Render the shipped site and our main config into the work directory."""
        self.dir.mkdir(parents=True, exist_ok=True)
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        write_self_signed(cert, key)
        site = render_site(
            SHIPPED_SITE.read_text(),
            {
                "node": self.upstreams,
                "listen": [f"127.0.0.1:{self.port}"],
                "cert": [str(cert)],
                "key": [str(key)],
            },
        )
        (self.dir / "pns.conf").write_text(site)
        main = self.dir / "nginx.conf"
        main.write_text(MAIN_CONF.format(dir=self.dir))
        return main

    def _command(self, main: Path, *extra: str) -> list[str]:
        # -e: errors from before the config is read go to our log too, not /var/log.
        return [
            self.binary,
            "-p",
            str(self.dir),
            "-c",
            str(main),
            "-e",
            str(self.error_log),
            *extra,
        ]

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"

    async def start(self, deadline: float = START_DEADLINE) -> NginxProcess:
        """Check the config (``nginx -t``), start nginx, and return once its port accepts.

        Raises ``NginxStartError`` with nginx's own words if the config is refused,
        or if it exits or does not listen within ``deadline`` seconds (then it is
        killed).
        """
        assert not self.running, "nginx is already running"
        main = self.write_config()
        check = await asyncio.create_subprocess_exec(
            *self._command(main, "-t", "-q"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(deadline):
            said, _ = await check.communicate()
        if check.returncode != 0:
            raise NginxStartError(f"nginx -t refused the config:\n{said.decode()}{self.tail()}")
        with (self.dir / "nginx.out").open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self._command(main),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            await self._wait_listening(deadline)
        except BaseException:
            await self.kill()
            raise
        return self

    async def _wait_listening(self, deadline: float) -> None:
        assert self.proc is not None
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            if self.proc.returncode is not None:
                raise NginxStartError(f"nginx exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(POLL_INTERVAL)  # another process: no event to await
                continue
            writer.close()
            await writer.wait_closed()
            return
        raise NginxStartError(f"nginx not listening in {deadline:.0f}s:\n{self.tail()}")

    async def kill(self) -> None:
        """SIGKILL by pid, and reap it. One process (``master_process off``): nothing is left."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            await self.proc.wait()

    async def stop(self, timeout: float = STOP_DEADLINE) -> None:
        """SIGTERM (nginx's fast stop) by pid; SIGKILL if it is still there after ``timeout``."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await self.proc.wait()
        except TimeoutError:
            await self.kill()

    def requests(self) -> list[Request]:
        """Every request nginx has answered so far (a long-poll in flight is not in yet)."""
        path = self.dir / "access.log"
        if not path.exists():
            return []
        found = []
        for line in path.read_text(errors="replace").splitlines():
            match = ACCESS_LINE.match(line)
            if match is not None:
                client, method, uri, status, upstream = match.groups()
                found.append(Request(client, method, uri, int(status), upstream))
        return found

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        if not self.error_log.exists():
            return "(no error log)"
        return self.error_log.read_text(errors="replace")[-chars:]

    def report(self) -> str:
        status = "running" if self.running else f"exit {self.proc and self.proc.returncode}"
        return f"===== nginx ({self.url}, {status}) {self.error_log}\n{self.tail()}"
