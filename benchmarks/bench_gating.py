"""The regression gate's false alarms and power, against a naive percent threshold.

Run: python benchmarks/bench_gating.py

Each trial draws a baseline and a current run of 200 latency samples each from a
lognormal distribution (median 20 ms), the current run's samples multiplied by
1 + shift (so its p95 moves by exactly +shift), records both into histograms as the
plugin does, and asks three contenders whether the current run regressed:

- ``gate``: the plugin's rule (p95 worse by > 10 % and > 1 ms, and the one-sided
  Mann-Whitney U test on the histograms significant at p < 0.005);
- ``p95 > 10 %``: a naive percent threshold on p95 alone (what most tools do);
- ``U test``: the significance test alone.

200 trials per cell, fixed seeds. Goals: A/A (shift 0) flagged <= 1 %; +25 % flagged
>= 95 %. The spread (sigma of log latency) matters: the p95 of 200 samples is
set by its 10 slowest, so a wider distribution needs a larger shift to be seen.
"""

from __future__ import annotations

import math
import random
import time

from pytest_axiomperf.baseline import ALPHA, REGRESSION, compare_metric, mann_whitney_u
from pytest_axiomperf.histogram import Histogram

TRIALS = 200
SAMPLES = 200
MEDIAN = 0.020
THRESHOLD = 10.0
NOISE_FLOOR_MS = 1.0
SHIFTS = (0.0, 0.10, 0.25, 0.50)
SIGMAS = (0.25, 0.5, 1.0)


def _hist(rng: random.Random, sigma: float, scale: float) -> Histogram:
    h = Histogram()
    mu = math.log(MEDIAN)
    for _ in range(SAMPLES):
        h.record(rng.lognormvariate(mu, sigma) * scale)
    return h


def run_cell(sigma: float, shift: float) -> tuple[int, int, int, float]:
    """Flag counts of (gate, naive p95, U test alone) over TRIALS, and µs per gate call."""
    rng = random.Random(f"{sigma}-{shift}")
    gate = naive = u_only = 0
    spent = 0.0
    for _ in range(TRIALS):
        old, new = _hist(rng, sigma, 1.0), _hist(rng, sigma, 1.0 + shift)
        start = time.perf_counter()
        verdict = compare_metric("t", "m", old, new, THRESHOLD, NOISE_FLOOR_MS)
        spent += time.perf_counter() - start
        gate += verdict.status == REGRESSION
        naive += new.percentile(95) > old.percentile(95) * (1 + THRESHOLD / 100)
        u_only += mann_whitney_u(old, new).p_greater < ALPHA
    return gate, naive, u_only, spent / TRIALS * 1e6


def main() -> None:
    print(
        f"{TRIALS} trials per row, {SAMPLES} samples per side, lognormal median "
        f"{MEDIAN * 1e3:g} ms; gate = p95 > {THRESHOLD:g}% and > {NOISE_FLOOR_MS:g} ms "
        f"and U test p < {ALPHA:g}"
    )
    header = (
        f"{'sigma':>5} {'p95 shift':>9} | {'gate':>7} {'p95>10%':>8} {'U test':>7} | "
        f"{'naive/gate':>10} | {'gate us/call':>12}"
    )
    print(header)
    print("-" * len(header))
    for sigma in SIGMAS:
        for shift in SHIFTS:
            gate, naive, u_only, us = run_cell(sigma, shift)
            ratio = f"{naive / gate:.2f}x" if gate else ("-" if not naive else "inf")
            print(
                f"{sigma:>5g} {f'+{shift:.0%}':>9} | {gate / TRIALS:>7.1%} "
                f"{naive / TRIALS:>8.1%} {u_only / TRIALS:>7.1%} | {ratio:>10} | {us:>12.0f}"
            )
    print("(shift +0% is the A/A false-alarm rate; the other rows are power)")


if __name__ == "__main__":
    main()
