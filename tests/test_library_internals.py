"""The library internals PNS relies on (pns_sio/sio/internals.py) exist as PNS uses them.

Fails after an upgrade that moved one, naming the PNS file to revisit: an override
of a method that no longer exists would otherwise silently stop applying.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import engineio
import pytest
import socketio
from engineio.async_socket import AsyncSocket
from socketio.async_pubsub_manager import AsyncPubSubManager

from pns_sio.sio.internals import INTERNALS, Internal


def _resolve(owner: str) -> Any:
    module_name, _, class_name = owner.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name) if class_name else module


def _instance(owner: Any) -> Any:
    """A real instance of ``owner``, built as PNS builds one (no network is opened)."""
    if owner is socketio.AsyncServer:
        return socketio.AsyncServer(async_mode="aiohttp")
    if owner is engineio.AsyncServer:
        return engineio.AsyncServer(async_mode="aiohttp")
    if owner is socketio.AsyncManager:
        return socketio.AsyncManager()
    if owner is AsyncPubSubManager or owner is socketio.AsyncRedisManager:
        # Never connects: the listener's task is cancelled before it runs.
        manager = socketio.AsyncRedisManager("redis://127.0.0.1:9/0")
        socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
        manager.initialize()
        manager.thread.cancel()
        return manager
    if owner is AsyncSocket:
        return AsyncSocket(engineio.AsyncServer(async_mode="aiohttp"), "sid")
    raise AssertionError(f"no way to build {owner!r}: add one to _instance")


def _where(item: Internal) -> str:
    return f"{item.owner}.{item.name} ({item.why}): revisit {item.used_in}"


@pytest.mark.parametrize("item", INTERNALS, ids=lambda i: f"{i.owner}.{i.name}")
async def test_each_internal_is_where_pns_expects_it(item: Internal) -> None:
    owner = _resolve(item.owner)
    if item.kind == "attribute":
        instance = _instance(owner)
        assert hasattr(instance, item.name), f"gone: {_where(item)}"
        return
    target = getattr(owner, item.name, None)
    assert callable(target), f"gone: {_where(item)}"
    parameters = inspect.signature(target).parameters
    if item.kind == "default":
        [name] = item.params or ()
        assert name in parameters, f"no parameter {name}: {_where(item)}"
        assert parameters[name].default == item.value, f"{name} changed: {_where(item)}"
        return
    if item.params is not None:
        names = tuple(p for p in parameters if p != "self")
        assert names == item.params, f"signature {names}, not {item.params}: {_where(item)}"


def test_every_library_class_pns_subclasses_is_listed() -> None:
    """A new override of a private method is listed (checked above), not hidden."""
    from pns_sio.sio import emit, managers, packets, publish, rooms, server

    listed = {i.name for i in INTERNALS}
    for module in (server, managers, emit, publish, rooms, packets):
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name in vars(cls):
                if not name.startswith("_") or name.startswith("__"):
                    continue
                for base in cls.__mro__[1:]:
                    if base.__module__.split(".")[0] in ("socketio", "engineio") and name in vars(
                        base
                    ):
                        assert name in listed, (
                            f"{cls.__name__}.{name} overrides {base.__name__}.{name}: list it"
                        )


@pytest.mark.parametrize(
    "data",
    [
        None,
        7,
        "text",
        b"raw",
        [],
        {},
        ["count", {"count": 1, "rev": 2}],
        ["batch", {"notifications": [{"id": "a", "data": {"n": [1, 2, {"x": None}]}}]}],
        [{"deep": [[[{"k": bytearray(b"x")}]]]}],
        {"nested": {"list": [1, "two", b"3"]}},
        ("a tuple", b"is not walked by the library"),
    ],
)
def test_the_packet_class_finds_binary_data_where_the_library_does(data: Any) -> None:
    from pns_sio.sio.packets import ClientPacket

    assert ClientPacket.data_is_binary(data) == socketio.packet.Packet.data_is_binary(data)
