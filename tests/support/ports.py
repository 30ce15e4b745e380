"""Free loopback ports for the servers a test starts."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_pair(offset: int = 10000, tries: int = 200) -> int:
    """A free port whose ``port + offset`` is free too (a Redis Cluster node's bus).

    Both below the kernel's ephemeral range: an outgoing connection elsewhere on the
    machine cannot take one between this check and the server's bind."""
    high = _ephemeral_low() - offset
    for _ in range(tries):
        port = random.randrange(min(10000, high - 1000), high)
        if _bindable(port) and _bindable(port + offset):
            return port
    raise RuntimeError(f"no free port pair in {tries} tries")
