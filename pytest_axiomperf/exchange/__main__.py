"""Run the embedded exchange alone: ``python -m pytest_axiomperf.exchange --port 0``.

Prints ``REST http://HOST:PORT`` and ``WS ws://HOST:PORT/ws`` as its first two
lines, then serves until SIGINT or SIGTERM. The bearer token is
``$AXIOM_AUTH_TOKEN``, else a random one (never taken from the command line,
where ``ps`` and shell history would show it); it is printed only with
``--print-token``. Only loopback addresses may be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import secrets
import signal
import sys
import threading
from collections.abc import Sequence

from aiohttp import web

from pytest_axiomperf.errors import ConfigError
from pytest_axiomperf.exchange import clock
from pytest_axiomperf.exchange.app import create_app
from pytest_axiomperf.exchange.models import ExchangeProfile

CONTROL_SECRET_ENV = "AXIOM_EXCHANGE_CONTROL_SECRET"
"""Environment variable through which the handle passes the control secret."""

_PARENT_POLL = 0.5


def _loopback(host: str) -> str:
    if host == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(
            f"refusing to bind {host!r}: the exchange serves loopback addresses only"
        )
    return host


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_axiomperf.exchange",
        description="Serve the pytest-axiomperf embedded exchange on a loopback address.",
    )
    parser.add_argument("--host", type=_loopback, default="127.0.0.1", help="loopback address")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument(
        "--print-token", action="store_true", help="print the token on the third line"
    )
    knobs = parser.add_argument_group("latency and faults (see pytest_axiomperf.exchange.models)")
    knobs.add_argument("--latency", type=float, default=0.0, help="fixed delay, seconds")
    knobs.add_argument(
        "--connect-latency",
        type=float,
        default=0.0,
        help="extra delay of a new connection's first request (its handshakes), seconds",
    )
    knobs.add_argument("--jitter", type=float, default=0.0, help="random extra delay, seconds")
    knobs.add_argument("--distribution", choices=("normal", "lognormal"), default="normal")
    knobs.add_argument("--seed", type=int, default=None, help="seed of the delay/fault draws")
    knobs.add_argument("--error-rate", type=float, default=0.0, help="share of REST 500s")
    knobs.add_argument("--rate-limit", type=float, default=0.0, help="requests/s, then 429")
    knobs.add_argument("--rate-limit-burst", type=int, default=0)
    knobs.add_argument("--ws-disconnect-every", type=int, default=0, help="close after N msgs")
    knobs.add_argument("--stall", type=float, default=0.0, help="stall length, seconds")
    knobs.add_argument("--stall-after", type=float, default=0.0)
    knobs.add_argument("--stall-every", type=float, default=0.0)
    knobs.add_argument("--push-rate", type=float, default=10.0, help="updates/s per token")
    knobs.add_argument(
        "--access-token-ttl", type=float, default=3600.0, help="issued access tokens, seconds"
    )
    # Used by ExchangeSimulator: exit when the parent's stdin pipe closes or the parent dies.
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    return parser


def _profile(args: argparse.Namespace) -> ExchangeProfile:
    return ExchangeProfile(
        latency=args.latency,
        connect_latency=args.connect_latency,
        jitter=args.jitter,
        distribution=args.distribution,
        seed=args.seed,
        error_rate=args.error_rate,
        rate_limit=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst,
        ws_disconnect_every=args.ws_disconnect_every,
        stall=args.stall,
        stall_after=args.stall_after,
        stall_every=args.stall_every,
        push_rate=args.push_rate,
        access_token_ttl=args.access_token_ttl,
    )


def _watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set `stop` when stdin reaches EOF (the parent closed it or died)."""

    def read_until_eof() -> None:
        # os.read, not sys.stdin: a thread blocked in a buffered read holds the buffer's
        # lock, and an interpreter exiting meanwhile aborts on it (SIGABRT).
        with contextlib.suppress(OSError, ValueError):
            while os.read(0, 4096):
                pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_until_eof, name="axiom-exchange-stdin", daemon=True).start()


async def _watch_ppid(stop: asyncio.Event) -> None:
    # Backup for the stdin pipe, which a forked grandchild of the parent may keep open.
    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), _PARENT_POLL)


async def serve(
    host: str,
    port: int,
    token: str,
    profile: ExchangeProfile,
    *,
    control_secret: str | None = None,
    print_token: bool = False,
    exit_with_parent: bool = False,
) -> None:
    """Serve the exchange until SIGINT/SIGTERM (or the parent goes, if asked)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    app = create_app(token, profile=profile, control_secret=control_secret)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        netloc = (
            f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
        )
        lines = [f"REST http://{netloc}", f"WS ws://{netloc}/ws"]
        if print_token:
            lines.append(f"TOKEN {token}")
        print("\n".join(lines), flush=True)
        watchers = []
        if exit_with_parent:
            _watch_parent(loop, stop)
            watchers.append(asyncio.ensure_future(_watch_ppid(stop)))
        await stop.wait()
        for task in watchers:
            task.cancel()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        profile = _profile(args)
    except ConfigError as exc:
        parser.error(str(exc))
    token = os.environ.get("AXIOM_AUTH_TOKEN") or secrets.token_urlsafe(32)
    if not (os.environ.get("AXIOM_AUTH_TOKEN") or args.print_token):
        print(
            "exchange: random bearer token; set AXIOM_AUTH_TOKEN or pass --print-token",
            file=sys.stderr,
            flush=True,
        )
    try:
        # Timers that wake on time: scenarios are emitted on schedule (clock.py).
        clock.run(
            serve(
                args.host,
                args.port,
                token,
                profile,
                control_secret=os.environ.get(CONTROL_SECRET_ENV) or None,
                print_token=args.print_token,
                exit_with_parent=args.exit_with_parent,
            )
        )
    except OSError as exc:
        print(f"exchange: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
