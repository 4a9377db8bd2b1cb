"""What the instruments' own code costs, counted in CPU instructions (deterministic).

Run: ``python benchmarks/bench_instrument_cost.py [--parts aiohttp,websockets]``
(needs ``valgrind``; ~3 minutes). The code measured is the ``pytest_axiomperf`` that
``PYTHONPATH`` finds, so two checkouts are compared by running it with each.

Timings on a shared machine move by tens of percent between runs; a count of the
instructions the client process executes does not (with ``PYTHONHASHSEED`` fixed),
so a change of a few hundred instructions per request or per message is seen. It
leaves out what instructions do not show (cache misses, the kernel's work), which
``bench_instruments.py`` measures, noisily, in requests and messages per second.

- aiohttp: a client process sends pooled ``GET /balance/{address}`` requests to the
  embedded exchange (its own process, not counted), one at a time, with each
  contender; it runs twice (50 and 250 requests) under ``valgrind --tool=cachegrind``
  and the difference, divided by 200, is the instructions per request.
- websockets: the instrument's per-read function (the one each read from the socket
  calls, with the frames websockets parsed from it) over ``bench_websocket.py``'s
  recorded stream of token updates, 2,000 messages per read (as a fast feed's reads
  bring) and 1 per read (a slow feed), with ``timestamp="timestamp"`` and
  ``timestamp=None``; instructions per message, the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

AIOHTTP_CLIENT = """
import asyncio, sys
import aiohttp
from pytest_axiomperf import PerformanceTracker

base, token, kind, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


async def empty_middleware(request, handler):
    return await handler(request)


async def main():
    tracker = PerformanceTracker("cost")
    options = {
        "bare": {},
        "empty middleware": {"middlewares": [empty_middleware]},
        "aiohttp_middleware()": {"middlewares": [tracker.aiohttp_middleware()]},
        "empty TraceConfig()": {"trace_configs": [aiohttp.TraceConfig()]},
        "aiohttp_trace()": {"trace_configs": [tracker.aiohttp_trace()]},
    }[kind]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, **options) as session:
        async def get(i):
            async with session.get(f"{base}/balance/So1wallet{i % 50}") as response:
                await response.read()
                assert response.status == 200, response.status

        for i in range(20 + n):  # 20 first: the pool and every route warmed
            await get(i)


asyncio.run(main())
"""

WEBSOCKETS_FEED = """
import sys, time
from websockets.frames import Frame, Opcode
from pytest_axiomperf import PerformanceTracker
from pytest_axiomperf.instruments.websockets import _Feed

path, timestamp, per, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(path, "rb").read()
frames, i = [], 0
while i < len(data):  # the server's frames as they were on the wire (not masked)
    size = data[i + 1] & 0x7F
    i += 2
    if size == 126:
        size = int.from_bytes(data[i : i + 2], "big")
        i += 2
    elif size == 127:
        size = int.from_bytes(data[i : i + 8], "big")
        i += 8
    frames.append(Frame(Opcode.TEXT, data[i : i + size]))
    i += size
frames = frames[:6000]
reads = [frames[j : j + per] for j in range(0, len(frames), per)]
tracker = PerformanceTracker("cost")
feed = _Feed(tracker, None if timestamp == "None" else timestamp)
arrived = time.perf_counter()
for _ in range(reps):
    for read in reads:
        feed.arrived = arrived
        feed.frames(read)
tracker.histogram("websocket_latency", "delivery")  # folds what is left
"""


def instructions(args: list[str]) -> int:
    """Instructions the Python process ``args`` executes, counted by cachegrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{args[0]} failed under valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def aiohttp_part(folder: str) -> list[str]:
    from pytest_axiomperf.exchange import ExchangeSimulator

    client = os.path.join(folder, "client.py")
    Path(client).write_text(AIOHTTP_CLIENT)
    lines = [
        "aiohttp: instructions per pooled GET /balance/{address}, client process only",
        f"   {'contender':<24}{'per request':>12}   vs bare",
    ]
    with ExchangeSimulator() as exchange:
        bare = 0.0
        for kind in (
            "bare",
            "empty middleware",
            "aiohttp_middleware()",
            "empty TraceConfig()",
            "aiohttp_trace()",
        ):
            counts = [
                instructions([client, exchange.base_url, exchange.token, kind, str(n)])
                for n in (50, 250)
            ]
            per_request = (counts[1] - counts[0]) / 200
            bare = bare or per_request
            lines.append(f"   {kind:<24}{per_request:>12,.0f}   {per_request / bare - 1:+.1%}")
    return lines


def websockets_part(folder: str) -> list[str]:
    sys.path.insert(0, str(HERE))
    import bench_websocket as bw

    from pytest_axiomperf.exchange import ExchangeSimulator

    stream = os.path.join(folder, "stream.bin")
    with ExchangeSimulator() as exchange:
        asyncio.run(bw.record_stream(exchange, stream))
    feed = os.path.join(folder, "feed.py")
    Path(feed).write_text(WEBSOCKETS_FEED)
    lines = ["websockets: instructions per message of the per-read function"]
    for timestamp, per in (("timestamp", 2000), ("None", 2000), ("timestamp", 1)):
        counts = [instructions([feed, stream, timestamp, str(per), str(reps)]) for reps in (1, 3)]
        label = f"timestamp={timestamp if timestamp == 'None' else repr(timestamp)}"
        lines.append(f"   {label:<24}{per:>5} per read {(counts[1] - counts[0]) / 12000:>8,.0f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="aiohttp,websockets")
    parts = parser.parse_args().parts.split(",")
    import pytest_axiomperf

    print(f"bench_instrument_cost.py: code from {Path(pytest_axiomperf.__file__).parent}")
    with tempfile.TemporaryDirectory() as folder:
        if "aiohttp" in parts:
            print("\n".join(aiohttp_part(folder)))
        if "websockets" in parts:
            print("\n".join(websockets_part(folder)))


if __name__ == "__main__":
    main()
