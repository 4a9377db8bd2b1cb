"""What the instruments for a bot's own clients cost the bot.

Run: ``python benchmarks/bench_instruments.py [--quick] [--parts 1,2,3,4]``.

1. aiohttp: requests/s of a bare ``aiohttp.ClientSession`` against the same
   session with ``tracker.aiohttp_trace()`` in its ``trace_configs``, against
   the embedded exchange (its own process, 127.0.0.1), one request at a time and
   20 in flight; a third session has an empty ``aiohttp.TraceConfig()``: what
   aiohttp's tracing costs before any receiver runs; a fourth has
   ``tracker.aiohttp_middleware()`` instead of the trace. Many short rounds, the
   order rotated each round, each round sending the same requests; the ratio is
   to the bare session's round of the same rotation, its median reported with
   the range, and the client's CPU per request (process time: the exchange runs
   in another process). Goal: ratio >= 0.95.
2. websockets: messages/s a bot's ``json.loads(await ws.recv())`` loop takes
   from the stream of ``bench_websocket.py`` part 4 (recorded from the exchange,
   served by ``ws_stream_server.py`` faster than any consumer reads), with a
   bare ``websockets.asyncio.client.connect`` against
   ``tracker.websockets_connect()`` timing delivery from each message's
   ``timestamp``, and two rows that split its cost: a connection subclass that
   only passes frames on, and ``websockets_connect(timestamp=None)`` (counts and
   rates, no timestamp). Rotated rounds, median ratio. Goal: ratio >= 0.9.
3. The axiomtradeapi SDK fixtures (needs ``pip install -e ".[sdk]"``): with the
   exchange's latency set to 50 ms, the p50 of ``axiom_sdk``'s balance call and
   of ``axiom_sdk_ws``'s ``new_pairs`` pushes, as recorded in ``axiom_tracker``
   (a pytest run in a subprocess). Goal: within +5 ms of 50 ms.
4. Where the SDK's balance call spends its time over the injected 50 ms, in
   one process, contenders alternated call by call: a pooled ``urllib3`` POST
   (the exchange and loopback alone), ``requests.post`` (a new connection per
   call, as the SDK sends), the SDK with no instrument, and the SDK as
   ``axiom_sdk`` sets it up, timed by the caller and as the instrument records
   it (the figure part 3 checks).

Each part ends with one line per goal, ``GOAL <name>: <figure> (goal ...): met``
or ``NOT MET``, for a quick reading of a re-run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from pytest_axiomperf import PerformanceTracker
from pytest_axiomperf.exchange import ExchangeSimulator

HERE = Path(__file__).resolve().parent


async def drive(
    request: Callable[[int], Awaitable[None]], total: int, in_flight: int
) -> tuple[float, float]:
    """Send ``total`` requests, ``in_flight`` at a time: (requests/s, client CPU us/request)."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await request(i)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return total / wall, cpu / total * 1e6


def session(
    headers: dict[str, str], traces: list[aiohttp.TraceConfig], middlewares: Any = ()
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=50, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector, headers=headers, trace_configs=traces, middlewares=middlewares
    )


def goal_line(name: str, runs: dict[str, list[tuple[float, float]]], contender: str) -> str:
    """``GOAL``: the median ratio of requests/s (and of CPU per request) to the bare rounds."""
    rates = [m[0] / b[0] for m, b in zip(runs[contender], runs["bare"], strict=True)]
    cpu = [b[1] / m[1] for m, b in zip(runs[contender], runs["bare"], strict=True)]
    ratio = statistics.median(rates)
    return (
        f"GOAL {name}: {ratio:.3f} of the bare session's requests/s "
        f"[{min(rates):.2f}-{max(rates):.2f}, {len(rates)} rounds], by CPU "
        f"{statistics.median(cpu):.3f} (goal >= 0.95): {verdict(ratio >= 0.95)}"
    )


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def row(in_flight: int, runs: dict[str, list[tuple[float, float]]]) -> str:
    """One line of part 1: rates, ratios to the bare session's rounds, CPU per request."""

    def med(name: str, i: int) -> float:
        return statistics.median(run[i] for run in runs[name])

    def ratio(name: str) -> str:
        got = [m[0] / b[0] for m, b in zip(runs[name], runs["bare"], strict=True)]
        return f"{statistics.median(got):.3f} [{min(got):.2f}-{max(got):.2f}]"

    return (
        f"   {in_flight:>9}   {med('bare', 0):>10,.0f}   {med('empty', 0):>11,.0f}"
        f"  {ratio('empty'):<18}  {med('traced', 0):>12,.0f}  {ratio('traced'):<18}"
        f"  {med('middleware', 0):>10,.0f}  {ratio('middleware'):<18}"
        f"  {med('bare', 1):>8.1f}  {med('empty', 1):>5.1f}  {med('traced', 1):>6.1f}"
        f"  {med('middleware', 1):>6.1f}"
    )


async def aiohttp_part(total: int, rounds: int) -> list[str]:
    lines = [
        "1. aiohttp: a bare ClientSession, the same with an empty aiohttp.TraceConfig()",
        "   (aiohttp's own tracing machinery, no receivers), with tracker.aiohttp_trace(),",
        "   and with tracker.aiohttp_middleware() (mw)",
        f"   {total} GET /balance/{{address}} per round, {rounds} rounds, order rotated;",
        "   ratio: to the bare round of the same rotation, median [range]; CPU: us/request",
        "   in flight   bare req/s   empty req/s  ratio               traced req/s  ratio"
        "               mw req/s    ratio               CPU bare  empty  traced      mw",
    ]
    goals: list[str] = []
    with ExchangeSimulator() as exchange:
        headers = {"Authorization": f"Bearer {exchange.token}"}
        base = exchange.base_url
        tracker = PerformanceTracker("bench")
        sessions = {
            "bare": session(headers, []),
            "empty": session(headers, [aiohttp.TraceConfig()]),
            "traced": session(headers, [tracker.aiohttp_trace()]),
            "middleware": session(headers, [], [tracker.aiohttp_middleware()]),
        }

        def getter(s: aiohttp.ClientSession) -> Callable[[int], Awaitable[None]]:
            async def get(i: int) -> None:
                async with s.get(f"{base}/balance/So1wallet{i % 50}") as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")

            return get

        try:
            for in_flight in (1, 20):
                for s in sessions.values():  # warm every pool and the exchange
                    await drive(getter(s), 200, in_flight)
                runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sessions}
                names = list(sessions)
                for r in range(rounds):
                    shift = r % len(names)
                    for name in names[shift:] + names[:shift]:
                        runs[name].append(await drive(getter(sessions[name]), total, in_flight))

                lines.append(row(in_flight, runs))
                goals.append(goal_line(f"aiohttp_trace, {in_flight} in flight", runs, "traced"))
                goals.append(
                    goal_line(f"aiohttp_middleware, {in_flight} in flight", runs, "middleware")
                )
        finally:
            for s in sessions.values():
                await s.close()
        recorded = tracker.stats("api_response_times", "GET /balance/{address}").count
        lines.append(
            f"   (trace and middleware recorded {recorded:,} requests: every one they saw)"
        )
    return lines + goals


async def stream_loop(connect: Callable[..., Any], url: str) -> tuple[float, float]:
    """A bot's loop, ``json.loads(await ws.recv())``, on the recorded stream:
    (messages per second, per CPU second)."""
    import bench_websocket as bw

    async with connect(url, **bw.STREAM_OPTIONS) as ws:
        for _ in range(bw.STREAM_WARMUP):
            await ws.recv()
        start = bw.clocks()
        for _ in range(bw.STREAM_MESSAGES):
            json.loads(await ws.recv())
        return bw.rate(start, bw.STREAM_MESSAGES)  # type: ignore[no-any-return]


async def websockets_part(rounds: int) -> list[str]:
    import bench_websocket as bw
    from websockets.asyncio.client import ClientConnection, connect

    class PassThrough(ClientConnection):
        """The floor of any subclass watching frames: one more call per frame."""

        def process_event(self, event: Any) -> None:
            super().process_event(event)

    def pass_through(url: str, **options: Any) -> Any:
        return connect(url, create_connection=PassThrough, **options)

    tracker = PerformanceTracker("bench")
    contenders: dict[str, Callable[..., Any]] = {
        "bare connect()": connect,
        "subclass, frames passed on": pass_through,
        "websockets_connect(timestamp=None)": tracker.websockets_connect(timestamp=None),
        'websockets_connect("timestamp")': tracker.websockets_connect(timestamp="timestamp"),
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    with ExchangeSimulator() as exchange, tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "stream.bin")
        await bw.record_stream(exchange, path)
        server = subprocess.Popen(
            [sys.executable, str(HERE / "ws_stream_server.py"), path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = f"ws://127.0.0.1:{server.stdout.readline().strip()}/"
            names = list(contenders)
            for r in range(rounds):
                shift = r % len(names)
                for name in names[shift:] + names[:shift]:
                    runs[name].append(await stream_loop(contenders[name], url))
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(10)
            if server.stdout is not None:
                server.stdout.close()
    lines = [
        "2. websockets: a bot's json.loads(await ws.recv()) loop on bench_websocket.py's "
        "recorded stream (part 4)",
        f"   {bw.STREAM_MESSAGES} messages timed per round, {rounds} rounds, order rotated;",
        "   ratios to the bare round of the same rotation, median [range]",
        f"   {'consumer':<36}{'msg/s':>8}  {'ratio':<18}{'CPU us/msg':>11}  CPU ratio",
    ]
    bare = runs["bare connect()"]
    for name, got in runs.items():
        ratios = [m[0] / b[0] for m, b in zip(got, bare, strict=True)]
        cpu = [m[1] / b[1] for m, b in zip(got, bare, strict=True)]
        lines.append(
            f"   {name:<36}{statistics.median(r[0] for r in got):>8,.0f}  "
            f"{statistics.median(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}]  "
            f"{1e6 / statistics.median(r[1] for r in got):>9.2f}  {statistics.median(cpu):>9.3f}"
        )
    delivered = tracker.stats("websocket_latency", "delivery").count
    lines.append(f"   (delivery latency recorded for {delivered:,} messages)")
    timed = runs['websockets_connect("timestamp")']
    ratios = [m[0] / b[0] for m, b in zip(timed, bare, strict=True)]
    cpu = [m[1] / b[1] for m, b in zip(timed, bare, strict=True)]
    ratio = statistics.median(ratios)
    lines.append(
        f'GOAL websockets_connect("timestamp"): {ratio:.3f} of the bare loop\'s messages/s '
        f"[{min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)} rounds], by CPU "
        f"{statistics.median(cpu):.3f} (goal >= 0.9): {verdict(ratio >= 0.9)}"
    )
    return lines


SDK_TEST = """
import asyncio
import json

import pytest


@pytest.mark.asyncio
async def test_sdk_latency(axiom_sdk, axiom_sdk_ws, axiom_exchange, axiom_tracker):
    axiom_exchange.configure(latency=0.05, push_rate=20)
    for _ in range(40):
        axiom_sdk.get_batched_sol_balance(["Wallet1", "Wallet2"])
    pairs = asyncio.Queue()

    async def on_new_pairs(items):
        for item in items:
            pairs.put_nowait(item)

    assert await axiom_sdk_ws.subscribe_new_tokens(on_new_pairs)
    listener = asyncio.create_task(axiom_sdk_ws.start())
    try:
        for _ in range(60):
            await asyncio.wait_for(pairs.get(), 5)
    finally:
        listener.cancel()
        await axiom_sdk_ws.close()
    rest = axiom_tracker.stats("api_response_times", "POST /api/batched-sol-balance")
    push = axiom_tracker.stats("websocket_latency", "new_pairs")
    print("\\nSDK-RESULT", json.dumps({"rest": rest.to_dict(), "push": push.to_dict()}))
"""


def sdk_part() -> list[str]:
    """Part 3: the SDK fixtures' timing against the exchange's injected 50 ms."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "test_sdk_latency.py").write_text(SDK_TEST)
        Path(folder, "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
    found = [line for line in done.stdout.splitlines() if line.startswith("SDK-RESULT ")]
    if done.returncode != 0 or not found:
        return ["3. SDK fixtures: the run failed", done.stdout[-2000:]]
    data = json.loads(found[0].split(" ", 1)[1])
    lines = [
        "3. SDK fixtures: axiom_exchange.configure(latency=0.05); goal: p50 within +5 ms",
        "   series                                         n       p50       p95   p50 - 50ms",
    ]
    for name, key in (
        ("axiom_sdk get_batched_sol_balance (REST)", "rest"),
        ("axiom_sdk_ws new_pairs pushes (delivery)", "push"),
    ):
        st = data[key]
        lines.append(
            f"   {name:<44} {st['count']:>4} {st['p50'] * 1e3:>7.2f}ms {st['p95'] * 1e3:>7.2f}ms"
            f" {(st['p50'] - 0.05) * 1e3:>+9.2f}ms"
        )
    for name, key in (("axiom_sdk balance call", "rest"), ("axiom_sdk_ws pushes", "push")):
        over = (data[key]["p50"] - 0.05) * 1e3
        lines.append(
            f"GOAL {name}: p50 {over:+.2f} ms over the injected 50 ms "
            f"(goal <= +5 ms): {verdict(over <= 5.0)}"
        )
    return lines


def sdk_split(calls: int) -> list[str]:
    """Part 4: the SDK's balance call with the exchange's 50 ms, split by contender."""
    import requests
    import urllib3
    from axiomtradeapi import AxiomTradeClient  # type: ignore[import-untyped]

    from pytest_axiomperf.instruments.sdk import sdk_client
    from pytest_axiomperf.target import Target

    payload = {"publicKeys": ["Wallet1", "Wallet2"]}
    original = requests.Session.get_adapter
    times: dict[str, list[float]] = {}
    with ExchangeSimulator() as exchange, tempfile.TemporaryDirectory() as folder:
        exchange.configure(latency=0.05)
        target = Target(exchange.base_url, exchange.ws_url, exchange.token, embedded=True)
        tracker = PerformanceTracker("bench")
        patches: list[tuple[object, str, object]] = []
        instrumented = sdk_client(
            target, tracker, Path(folder, "a"), lambda o, n, v: patches.append((o, n, v))
        )
        guarded = patches[0][2]  # the guard's get_adapter, installed for its rounds only
        bare = AxiomTradeClient(
            auth_token=exchange.token,
            refresh_token=exchange.token,
            use_saved_tokens=False,
            storage_dir=str(Path(folder, "b")),
        )
        bare.endpoints.BASE_URL_API = exchange.base_url + "/api"
        host, port = exchange.base_url.split("//")[1].split(":")
        pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1)
        headers = {"Authorization": f"Bearer {exchange.token}", "Content-Type": "application/json"}
        body = json.dumps(payload).encode()

        def pooled() -> None:
            answer = pool.request("POST", "/api/batched-sol-balance", body=body, headers=headers)
            assert answer.status == 200, answer.status

        url = exchange.base_url + "/api/batched-sol-balance"

        def plain_requests() -> None:
            answer = requests.post(url, json=payload, headers=headers, timeout=5)
            assert answer.status_code == 200, answer.status_code

        def sdk_bare() -> None:
            assert bare.get_batched_sol_balance(payload["publicKeys"])

        def sdk_instrumented() -> None:
            requests.Session.get_adapter = guarded  # type: ignore[method-assign]
            try:
                assert instrumented.get_batched_sol_balance(payload["publicKeys"])
            finally:
                requests.Session.get_adapter = original  # type: ignore[method-assign]

        contenders = {
            "urllib3, pooled (exchange + loopback)": pooled,
            "requests.post, a new connection per call": plain_requests,
            "SDK, no instrument (new connection per call)": sdk_bare,
            "SDK as axiom_sdk sets it up, caller's time": sdk_instrumented,
        }
        for fn in contenders.values():  # warm up
            fn()
        names = list(contenders)
        for i in range(calls):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                contenders[name]()
                times.setdefault(name, []).append(time.perf_counter() - start)
        pool.close()
    lines = [
        "4. SDK balance call with the exchange's injected 50 ms, contenders alternated call "
        f"by call, {calls} calls each",
        f"   {'contender':<52}{'p50':>9}{'p95':>9}   p50 - 50ms",
    ]
    recorded = tracker.stats("api_response_times", "POST /api/batched-sol-balance")
    rows = [(name, statistics.median(got), quantile(got, 0.95)) for name, got in times.items()]
    rows.append(("SDK as axiom_sdk sets it up, recorded (part 3)", recorded.p50, recorded.p95))
    for name, p50, p95 in rows:
        lines.append(
            f"   {name:<52}{p50 * 1e3:>7.2f}ms{p95 * 1e3:>7.2f}ms {(p50 - 0.05) * 1e3:>+9.2f}ms"
        )
    return lines


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter rounds")
    parser.add_argument("--parts", default="1,2,3,4", help="which parts to run, e.g. 1 or 1,3")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"bench_instruments.py, {stamp}, Python {sys.version.split()[0]}, load average {load}")
    if 1 in parts:
        total, rounds = (300, 4) if args.quick else (500, 30)
        print("\n".join(asyncio.run(aiohttp_part(total, rounds))))
    if 2 in parts:
        print("\n".join(asyncio.run(websockets_part(4 if args.quick else 20))))
    if 3 in parts:
        print("\n".join(sdk_part()))
    if 4 in parts:
        print("\n".join(sdk_split(20 if args.quick else 60)))


if __name__ == "__main__":
    main()
