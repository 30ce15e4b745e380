"""The ``pns`` command: ``pns serve`` runs a node.

Flags mirror the ``PNS_*`` environment variables (``--ack-timeout`` and
``PNS_ACK_TIMEOUT``); flags win. A bad value stops start-up with one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import logging.config
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import SettingsError, StoreUnavailable
from .settings import (
    SWITCHES,
    EventLoop,
    LogLevel,
    Settings,
    env_variables,
    flag_names,
    parse_flag,
    redact_url,
    warnings_for,
)
from .settings_doc import FLAG_HELP

logger = logging.getLogger("pns_sio")

DEMO_WARNING = (
    "DEMO MODE: anyone can connect as any user, every origin is allowed and the HTTP API "
    "needs no token. Never run this on a network you do not trust."
)


LISTEN_BACKLOG = 1024
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Keep the cyclic collector off the long-lived objects of start-up.

    Measured on the fan-out bench: full collections walking every
    connection's objects paused the loop 73-200 ms at 2,000 connections, which
    made the notify -> device p99; freezing what start-up made and collecting
    the young generation less often took p99 at 500 notifications/s from
    338 ms to 23 ms.
    """
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, second, third)


def _configure_logging(level: LogLevel) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"handlers": ["stderr"], "level": "WARNING"},
            "loggers": {"pns_sio": {"level": level}},
        }
    )


def _flag_help(name: str) -> str:
    """A flag's meaning, default and variables, from docs/configuration.md's table."""
    default, meaning = FLAG_HELP[name]
    text = f"{meaning} (default: {default}; variable: {' / '.join(env_variables(name))})"
    # argparse formats with %: a literal percent sign is doubled.
    return text.replace("`", "").replace("%", "%%")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pns",
        description="PNS push-notification service. Every flag of `pns serve` has an "
        "environment variable (docs/configuration.md); a flag wins over its variable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a PNS node")
    for name in flag_names():
        serve.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            metavar="VALUE",
            help=_flag_help(name),
        )
    for switch in SWITCHES:
        serve.add_argument(
            "--" + switch.replace("_", "-"),
            dest=switch,
            action="store_true",
            default=None,
            help=_flag_help(switch),
        )
    notify = commands.add_parser(
        "notify",
        help="create notifications (through the store and Redis, or a node's HTTP API)",
        description="Create a notification and print its id. Without --user, read JSON lines "
        '{"user_id": ..., "data": {...}} from stdin and print one id per line.',
    )
    notify.add_argument("--user", help="the recipient's user id")
    notify.add_argument("--data", help="the notification's data, a JSON object")
    notify.add_argument(
        "--url", help="a node's base URL: create through its HTTP API (token: PNS_API_TOKEN)"
    )
    notify.add_argument(
        "--token", help="API token for --url (default: PNS_API_TOKEN; argv is visible to ps)"
    )
    notify.add_argument(
        "--token-file", help="read the API token for --url from this file (PNS_API_TOKEN_FILE)"
    )
    return parser


def load_settings(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (``env``, default ``os.environ``), overridden by flags."""
    overrides: dict[str, Any] = {}
    for name in flag_names():
        raw = getattr(args, name, None)
        if raw is not None:
            overrides[name] = parse_flag(name, raw)
    if args.demo:
        overrides["demo"] = True
    if args.demo_public:
        overrides["demo_public"] = True
    return Settings.from_env(env, **overrides)


def serve(settings: Settings) -> None:
    """Run a node until SIGTERM or SIGINT, then stop it gracefully (bounded)."""
    _configure_logging(settings.log_level)
    if settings.demo:
        logger.warning(DEMO_WARNING)
    for warning in warnings_for(settings):
        logger.warning(warning)
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        runner.run(_serve(settings))


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (``auto``) or asked for; None: asyncio's own loop.

    uvloop's transports and scheduling are in C: about a sixth less CPU per
    delivery in bench/experiments/fetch.py."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError("PNS_EVENT_LOOP=uvloop: uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


async def _serve(settings: Settings) -> None:
    from aiohttp import web

    from .app import NODE, create_app

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    try:
        # A reconnect storm overflows aiohttp's default listen backlog of 128.
        site = web.TCPSite(runner, settings.host, settings.port, backlog=LISTEN_BACKLOG)
        await site.start()
        tune_gc()
        logger.info("event loop: %s", type(asyncio.get_running_loop()).__module__)
        # Only now, listening: a node that cannot bind its port never says it is ready.
        logger.info(
            "node ready: store %s, broker %s",
            store_description(settings),
            broker_description(settings),
        )
        url = f"http://{settings.host}:{settings.port}"
        shown = url.replace("0.0.0.0", "127.0.0.1")
        demo = f" (demo page: {shown}/demo)" if settings.demo else ""
        print(f"PNS listening on {url}{demo}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("signal received: stopping (grace %gs)", settings.shutdown_grace)
        # The listener still answers while draining: /readyz says 503 first. It
        # closes before the clients are sent away: a storm of refused
        # reconnects to this node doubled its stop time with 10,000 devices.
        await app[NODE].drain(settings.shutdown_grace, before_goodbye=site.stop)
    finally:
        await runner.cleanup()


def store_description(settings: Settings) -> str:
    """The store a node opens, as an operator needs to find it (no password)."""
    url = settings.store_url
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return "SQLite in memory" if path == ":memory:" else f"SQLite file {Path(path).resolve()}"
    return redact_url(url)


def broker_description(settings: Settings) -> str:
    if not settings.redis_url:
        return "embedded (one node)"
    return (
        f"redis {redact_url(settings.redis_url)} (channel {settings.redis_channel!r}, "
        f"{settings.routing})"
    )


def exit_without_teardown(code: int) -> NoReturn:
    """End the process after a clean stop, skipping the interpreter's teardown.

    By now the store, the broker and every connection are closed. Teardown would
    only free the connections' objects one by one: 5 s with 10,000 connections
    (measured with bench/experiments/sigterm.py), in a rolling restart's way.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "notify":
        from .notify_cli import run_notify

        return run_notify(args)
    try:
        settings = load_settings(args)
    except SettingsError as exc:
        print(f"pns: {exc}", file=sys.stderr)
        return 2
    try:
        serve(settings)
        exit_without_teardown(0)
    except SettingsError as exc:
        print(f"pns: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        # The driver's own words name the host and the cause (clients never see them).
        cause = exc.__cause__
        why = f" ({type(cause).__name__}: {str(cause)[:300]})" if cause is not None else ""
        print(
            f"pns: cannot open the store {store_description(settings)} (PNS_STORE_URL): "
            f"{exc.message}{why}",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(
            f"pns: cannot listen on {settings.host}:{settings.port}: {exc} "
            "(another process holds the port? PNS_PORT or --port chooses another)",
            file=sys.stderr,
        )
        return 1
    return 0
