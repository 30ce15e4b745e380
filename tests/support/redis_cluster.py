"""A real Redis Cluster on loopback ports: 3 primaries, each with a replica, made with
``redis-cli --cluster create`` from Debian's redis packages."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from .ports import free_port_pair
from .redis import RedisProcess

NODE_TIMEOUT_MS = 1000  # how soon a primary that stops answering is failed over
READY_DEADLINE = 30.0


class RedisClusterProcesses:
    def __init__(self, workdir: Path, primaries: int = 3, replicas: int = 1) -> None:
        if shutil.which("redis-cli") is None:
            raise RuntimeError("redis-cli is not installed (make test installs redis-server)")
        self.nodes: list[RedisProcess] = []
        self.replicas = replicas
        for i in range(primaries * (1 + replicas)):
            port = free_port_pair()
            home = workdir / f"cluster-{i}"
            home.mkdir(parents=True, exist_ok=True)
            args = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(home / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # A replica syncs at once (the default waits 5 s), so it can take over.
                "--repl-diskless-sync-delay",
                "0",
            )
            self.nodes.append(RedisProcess(home, port=port, extra_args=args))

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"redis+cluster://{seeds}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok(self.nodes)
        self.wait_replicas_synced()

    def wait_replicas_synced(self) -> None:
        """Until every replica has its primary's data: only then can it take over."""
        deadline = time.monotonic() + READY_DEADLINE
        for node in self.nodes:
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_connect_timeout=0.5)
            try:
                while True:
                    info = client.info("replication")
                    if info["role"] == "master" or info.get("master_link_status") == "up":
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis replica on port {node.port} never synced")
                    time.sleep(0.05)
            finally:
                client.close()

    def wait_ok(self, nodes: list[RedisProcess]) -> None:
        """Until every node in ``nodes`` says the cluster is ok (every slot served)."""
        deadline = time.monotonic() + READY_DEADLINE
        for node in nodes:
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_connect_timeout=0.5)
            try:
                while client.cluster("info")["cluster_state"] != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis cluster not ok on port {node.port}")
                    time.sleep(0.05)
            finally:
                client.close()

    def primary_of(self, key: str) -> RedisProcess:
        """The node that serves ``key``'s slot now."""
        running = next(n for n in self.nodes if n.running)
        client = redis.Redis(host="127.0.0.1", port=running.port)
        try:
            slot = client.cluster("keyslot", key)
            for start, end, primary, *_ in client.cluster("slots"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise RuntimeError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
