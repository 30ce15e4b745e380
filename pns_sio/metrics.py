"""Prometheus metrics of one node (its own registry, so several nodes can share a process)."""

from __future__ import annotations

from typing import Any, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Gauge, generate_latest

M = TypeVar("M", bound=prometheus_client.metrics.MetricWrapperBase)


def _cached_labels(self: M, *values: Any, **by_name: Any) -> M:
    """``labels()`` without prometheus-client's lock and key checks after the first call
    for a value: these run for every store call, request and fetch."""
    if by_name:
        return prometheus_client.metrics.MetricWrapperBase.labels(self, *values, **by_name)
    cache: dict[tuple[Any, ...], M] = self.__dict__.setdefault("_pns_children", {})
    child = cache.get(values)
    if child is None:
        child = cache[values] = prometheus_client.metrics.MetricWrapperBase.labels(self, *values)
    return child


class Counter(prometheus_client.Counter):
    labels = _cached_labels


class Histogram(prometheus_client.Histogram):
    labels = _cached_labels


class Metrics:
    """The node's counters; no user ids as labels."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("pns_connections", "Open Socket.IO connections", registry=r)
        self.broker_up = Gauge(
            "pns_broker_up",
            "1 while the node hears the other nodes (subscribed to Redis; always in embedded "
            "mode), else 0",
            registry=r,
        )
        self.connects = Counter(
            "pns_connects", "Connection attempts by outcome", ["outcome"], registry=r
        )
        self.store_queries = Counter(
            "pns_store_queries", "Store calls by operation", ["op"], registry=r
        )
        # Time from the call to its answer, queueing included: what a fetch or a
        # create waits for the store.
        self.store_seconds = Histogram(
            "pns_store_seconds",
            "Store call latency by operation, waiting included",
            ["op"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.store_errors = Counter(
            "pns_store_errors", "Store calls that failed (unavailable)", ["op"], registry=r
        )
        self.signals = Counter(
            "pns_signals", "Notification signals received by this node", ["handled"], registry=r
        )
        self.counts_sent = Counter(
            "pns_counts_sent", "new-notifications-count emissions to a user room", registry=r
        )
        self.fetches = Counter("pns_fetches", "Fetch requests by outcome", ["outcome"], registry=r)
        self.delivered = Counter(
            "pns_notifications_seen", "Notifications marked seen after an ack", registry=r
        )
        self.undeliverable = Counter(
            "pns_notifications_undeliverable",
            "Records that could not be delivered, set aside (marked seen) with a log line",
            registry=r,
        )
        self.created = Counter(
            "pns_notifications_created", "Notifications created through this node", registry=r
        )
        self.resyncs = Counter(
            "pns_resyncs", "Count resyncs after the broker subscription came back", registry=r
        )
        self.broker_dropped = Counter(
            "pns_broker_messages_dropped",
            "Messages from Redis dropped as unreadable (not JSON, nested too deep, no object)",
            registry=r,
        )
        self.broker_received = Counter(
            "pns_broker_messages_received",
            "Messages this node read from Redis (in routed mode only its users' and the "
            "classic channel's)",
            registry=r,
        )
        self.user_channels = Gauge(
            "pns_broker_user_channels",
            "Routed mode: users whose channel this node subscribes to (held, or lingering)",
            registry=r,
        )
        self.republished = Counter(
            "pns_publish_recoveries",
            "Times Redis took messages again after some were lost; counts re-published",
            registry=r,
        )
        self.closed = Counter(
            "pns_connections_closed",
            "Connections this node closed, by reason",
            ["reason"],
            registry=r,
        )
        self.malformed = Counter(
            "pns_malformed_packets", "Client packets dropped as unreadable", registry=r
        )
        self.http_requests = Counter(
            "pns_http_requests", "HTTP API requests by status", ["status"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
