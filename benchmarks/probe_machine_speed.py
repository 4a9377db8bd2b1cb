"""How fast this machine runs the calibration's work, moment to moment.

Every ``--every`` seconds, ``--samples`` times: the calibration's loop
(:mod:`pytest_axiomperf.calibration`, 30 repetitions of ~1.5 ms: fastest and median),
then 300 short bursts of the same work (6 items, ~80 us) each after a 0.5 ms sleep, the
way a bot's code runs between awaits (median and p95). On a virtual machine whose host
runs it at another speed for seconds at a time, the medians jump between two levels
while the fastest repetition barely moves: what the committed baseline's
typical-speed guard is for. Run it with and without a CPU hog beside it::

    python benchmarks/probe_machine_speed.py --samples 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_axiomperf import calibration


def bursts(count: int = 300, items: int = 6, gap: float = 0.0005) -> tuple[float, float]:
    """Median and p95, in microseconds, of ``count`` bursts each after a ``gap`` sleep."""
    times = []
    for _ in range(count):
        time.sleep(gap)
        started = time.perf_counter_ns()
        calibration._work(items)
        times.append((time.perf_counter_ns() - started) / 1e3)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    args = parser.parse_args()
    for _ in range(args.samples):
        loop = calibration.calibrate()
        median, p95 = bursts()
        print(
            f"{time.strftime('%H:%M:%S')}  loop fastest {loop['ms']:.3f} ms, median "
            f"{loop['median_ms']:.3f} ms   bursts median {median:.1f} us, p95 {p95:.1f} us",
            flush=True,
        )
        time.sleep(args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
