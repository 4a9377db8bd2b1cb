"""Delivery latency of room pushes: the axiomtradeapi SDK's own client vs a bare loop.

Run: ``python benchmarks/bench_sdk.py`` (needs ``pip install -e ".[sdk]"``).

The embedded exchange (its own subprocess) pushes ``new_pairs`` at a fixed rate
(``push_rate``: 200/s, then 2,000/s); each contender joins the room on its own connection and
records, for every push, the receive time minus the push's ``emitted_at`` (the
time the exchange intended to send it), so a slow client shows as latency
rather than as a lower rate (no coordinated omission). Contenders, interleaved
over rounds on the same exchange:

- ``bare websockets``: ``websockets.asyncio`` ``recv()`` + ``json.loads`` (the floor);
- ``WebSocketClient``: pytest-axiomperf's client with a room handler (when it
  has rooms);
- ``axiomtradeapi SDK``: ``AxiomTradeWebSocketClient`` (curl_cffi transport),
  set up as the README says, timed when its ``subscribe_new_tokens`` callback runs.

No request leaves the machine: the proxy variables point at a closed loopback
port, and the SDK's pre-flight requests and fallback clusters are switched off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import connect

from pytest_axiomperf.exchange import ExchangeSimulator

RATES = (200.0, 2000.0)  # pushes per second
ROUND_SECONDS = 3.0  # measured per contender, round and rate
WARMUP = 50  # pushes dropped at the start of each round
ROUNDS = 3
JOIN = json.dumps({"action": "join", "room": "new_pairs"})

Round = Callable[[ExchangeSimulator, int], Awaitable[list[float]]]


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def offline() -> None:
    """Proxy variables at a loopback port that refuses connections; loopback exempt."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ[name] = os.environ[name.lower()] = f"http://127.0.0.1:{port}"
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ["CF_CLEARANCE"] = "benchmark"


async def bare_round(exchange: ExchangeSimulator, pushes: int) -> list[float]:
    """A bare websockets loop: the floor."""
    samples: list[float] = []
    headers = {"Cookie": f"auth-access-token={exchange.token}"}
    async with connect(exchange.ws_url, additional_headers=headers, proxy=None) as ws:
        await ws.send(JOIN)
        while len(samples) < WARMUP + pushes:
            raw = await asyncio.wait_for(ws.recv(), 5)
            received = time.time()
            samples.append(received - json.loads(raw)["emitted_at"])
    return samples[WARMUP:]


async def sdk_round(exchange: ExchangeSimulator, pushes: int) -> list[float]:
    """The SDK's AxiomTradeWebSocketClient, timed in its subscribe_new_tokens callback."""
    from axiomtradeapi import AxiomTradeClient

    with tempfile.TemporaryDirectory() as storage:
        client = AxiomTradeClient(
            auth_token=exchange.token,
            refresh_token=exchange.token,
            use_saved_tokens=False,
            storage_dir=storage,
        )
        ws = client.get_websocket_client(log_level=logging.WARNING)
    ws.ws_url = ws.ws_url_token_price = exchange.ws_url
    connect_curl, dispatch = ws._connect_curl, ws._dispatch

    async def no_preflight(session: Any, tokens: Any) -> None:
        return None

    async def only_the_exchange(tokens: Any, urls: list[str]) -> bool:
        result: bool = await connect_curl(tokens, [u for u in urls if u == exchange.ws_url])
        return result

    last_raw = [""]

    async def keep_raw(raw: str) -> None:
        # The callback gets only the content: keep the envelope to read emitted_at there.
        last_raw[0] = raw
        await dispatch(raw)

    ws._preflight_curl = no_preflight
    ws._connect_curl = only_the_exchange
    ws._dispatch = keep_raw
    samples: list[float] = []
    done = asyncio.Event()

    async def on_new_pairs(items: list[dict[str, Any]]) -> None:
        received = time.time()
        samples.append(received - json.loads(last_raw[0])["emitted_at"])
        if len(samples) >= WARMUP + pushes:
            done.set()

    if not await ws.subscribe_new_tokens(on_new_pairs):
        raise RuntimeError("the SDK could not connect to the embedded exchange")
    listener = asyncio.ensure_future(ws.start())
    try:
        await asyncio.wait_for(done.wait(), 5 + ROUND_SECONDS * 2)
    finally:
        listener.cancel()
        await ws.close()
    return samples[WARMUP : WARMUP + pushes]


def client_round() -> Round | None:
    """pytest-axiomperf's WebSocketClient with a room handler, when it has rooms."""
    try:
        from pytest_axiomperf import WebSocketClient
    except ImportError:
        return None
    if not hasattr(WebSocketClient, "join"):
        return None

    async def run(exchange: ExchangeSimulator, pushes: int) -> list[float]:
        samples: list[float] = []
        done = asyncio.Event()

        async def on_push(message: dict[str, Any]) -> None:
            samples.append(time.time() - message["emitted_at"])
            if len(samples) >= WARMUP + pushes:
                done.set()

        client = WebSocketClient(exchange.ws_url, token=exchange.token)
        try:
            await client.join("new_pairs", on_push)
            await asyncio.wait_for(done.wait(), 5 + ROUND_SECONDS * 2)
        finally:
            await client.close()
        return samples[WARMUP : WARMUP + pushes]

    return run


def main() -> int:
    """Run every contender ROUNDS times, interleaved; print the table."""
    offline()
    contenders: dict[str, Round] = {"bare websockets": bare_round}
    client = client_round()
    if client is not None:
        contenders["WebSocketClient"] = client
    try:
        import axiomtradeapi

        contenders[f"axiomtradeapi {axiomtradeapi.__version__}"] = sdk_round
    except ImportError:
        print("axiomtradeapi is not installed: pip install -e '.[sdk]'", file=sys.stderr)
    print(
        f"Room push delivery latency: new_pairs, {ROUNDS} interleaved rounds of "
        f"{ROUND_SECONDS:g} s per contender and rate ({WARMUP} warm-up pushes dropped per "
        f"round), python {sys.version.split()[0]}"
    )
    header = f"{'rate':>7} {'contender':<22}{'n':>7}"
    header += "".join(f"{col:>10}" for col in ("mean", "p50", "p95", "p99", "max"))
    print(header + f"{'mean/bare':>11}{'p99/bare':>10}")
    with ExchangeSimulator() as exchange:
        for rate in RATES:
            exchange.configure(push_rate=rate)
            pushes = int(rate * ROUND_SECONDS)
            samples: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(ROUNDS):
                for name, run in contenders.items():
                    samples[name].extend(asyncio.run(run(exchange, pushes)))
            floor = statistics.fmean(samples["bare websockets"])
            floor_p99 = percentile(samples["bare websockets"], 99)
            for name, values in samples.items():
                ms = [v * 1e3 for v in values]
                cells = (statistics.fmean(ms), *(percentile(ms, q) for q in (50, 95, 99)), max(ms))
                row = f"{rate:>5g}/s {name:<22}{len(values):>7}"
                row += "".join(f"{cell:>8.3f}ms" for cell in cells)
                ratios = statistics.fmean(values) / floor, percentile(values, 99) / floor_p99
                print(row + f"{ratios[0]:>10.2f}x{ratios[1]:>9.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
