"""Rate limits of one node: token buckets per connection, client address and API token.

Limits are per node (no shared state): a client spread over N nodes gets N
times the rate, which is fine for their purpose: keeping one node usable
under abuse. A rate of 0 turns a limit off.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Iterable

MAX_TRACKED_KEYS = 100_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenBucket:
    """``rate`` tokens a second, up to ``burst`` saved; ``take()`` spends one if there is one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def available(self) -> bool:
        """Whether ``take()`` would succeed now, spending nothing."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens >= 1.0

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        if self.available():
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token, for a Retry-After header."""
        return 0.0 if self.rate <= 0 else max(0.0, (1.0 - self.tokens) / self.rate)


class KeyedBuckets:
    """A bucket per key (client address, token), forgetting the least recent past a bound."""

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_TRACKED_KEYS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str) -> bool:
        return self.rate <= 0 or self.bucket(key).take()


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8, 192.0.2.7`` → networks; raises ValueError for a bad entry."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the
    right-most address in ``X-Forwarded-For`` that is not a trusted proxy itself."""
    address = peer or "unknown"
    if not forwarded_for or not _is_trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _is_trusted(hop, trusted):
            return hop
        address = hop
    return address


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
