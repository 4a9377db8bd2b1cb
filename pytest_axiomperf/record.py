"""``axiomperf record``: record a WebSocket feed with its timing, to replay it later.

The recording is JSONL, one ``{"t": seconds, "message": {...}}`` line per JSON
object message received, ``t`` counted from the connection (perf_counter).
``axiom_exchange.scenario(replay=PATH, speed=...)`` plays it again. Any feed
speaking JSON works: the room protocol (``--join ROOM``) or the guide's
(``--subscribe TOKEN``). The token comes from ``$AXIOM_AUTH_TOKEN`` only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "record_feed", "run"]

#: A recording stops at this many messages, whatever ``--seconds`` says.
MAX_MESSAGES = 1_000_000


async def record_feed(
    url: str,
    out: Path,
    seconds: float,
    *,
    rooms: list[str] | None = None,
    tokens: list[str] | None = None,
    token: str | None = None,
) -> int:
    """Record `url`'s JSON messages for `seconds` into `out`; returns how many."""
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    count = 0
    with out.open("w", encoding="utf-8") as sink:
        async with connect(url, additional_headers=headers, proxy=None, max_queue=None) as ws:
            for room in rooms or []:
                await ws.send(json.dumps({"action": "join", "room": room}))
            if tokens:
                await ws.send(json.dumps({"type": "subscribe", "tokens": tokens}))
            start = time.perf_counter()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while count < MAX_MESSAGES:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    raw = await asyncio.wait_for(ws.recv(), left)
                except asyncio.TimeoutError:
                    break
                t = time.perf_counter() - start
                try:
                    message: Any = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    sink.write(json.dumps({"t": round(t, 6), "message": message}) + "\n")
                    count += 1
    return count


def add_parser(sub: Any) -> None:
    """Add ``record`` to the ``axiomperf`` subcommands."""
    parser = sub.add_parser(
        "record",
        help="record a WebSocket feed with its timing (JSONL) for scenario(replay=...)",
        description="Token: $AXIOM_AUTH_TOKEN (never on the command line).",
    )
    parser.add_argument("url", metavar="URL", help="ws:// or wss:// URL of the feed")
    parser.add_argument("--out", type=Path, required=True, metavar="FEED.jsonl")
    parser.add_argument("--seconds", type=float, required=True, metavar="S")
    parser.add_argument("--join", action="append", default=[], metavar="ROOM")
    parser.add_argument("--subscribe", action="append", default=[], metavar="TOKEN")


def run(args: argparse.Namespace) -> int:
    """Run ``axiomperf record``; returns the exit code (2 on bad usage)."""
    if not str(args.url).startswith(("ws://", "wss://")):
        _error(f"URL must start with ws:// or wss://, got {args.url!r}")
        return 2
    if not 0 < args.seconds <= 86_400:
        _error(f"--seconds must be > 0 and <= 86400, got {args.seconds!r}")
        return 2
    from websockets.exceptions import WebSocketException

    try:
        count = asyncio.run(
            record_feed(
                args.url,
                args.out,
                args.seconds,
                rooms=args.join,
                tokens=args.subscribe,
                token=os.environ.get("AXIOM_AUTH_TOKEN"),
            )
        )
    except (OSError, WebSocketException) as exc:
        _error(f"cannot record {args.url}: {exc}")
        return 2
    print(f"axiomperf record: {count} messages in {args.seconds:g} s written to {args.out}")
    return 0


def _error(message: str) -> None:
    print(f"axiomperf record: error: {message}", file=sys.stderr)
