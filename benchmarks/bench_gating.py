"""The regression gate's false alarms and power, against a naive percent threshold.

Run: python benchmarks/bench_gating.py

These are synthetic, independent samples: the model under which a within-run test
is valid. Real runs are not like this (see bench_gate_runs.py).

Each trial draws a baseline and a current run of 200 latency samples each from a
lognormal distribution (median 20 ms), the current run's samples multiplied by
1 + shift (so its p95 moves by exactly +shift), records both into histograms as the
plugin does, and asks three contenders whether the current run regressed:

- ``gate``: the plugin's rule for one run a side (p95 and median worse by > 10 %,
  and the one-sided Mann-Whitney U test on the histograms significant at p < 0.005;
  no absolute floor);
- ``p95 > 10 %``: a naive percent threshold on p95 alone (what most tools do);
- ``U test``: the significance test alone.

200 trials per cell, fixed seeds. Goals: A/A (shift 0) flagged <= 1 %; +25 % flagged
>= 95 %. The spread (sigma of log latency) matters: the p95 of 200 samples is
set by its 10 slowest, so a wider distribution needs a larger shift to be seen.

A second table runs whole tests through ``compare``: one metric split over three
routes, one of them slowed, the whole metric's comparison alone against the gate
with its per-route comparisons (its A/A rate included).
"""

from __future__ import annotations

import math
import random
import time

from pytest_axiomperf.baseline import ALPHA, REGRESSION, compare, compare_metric, mann_whitney_u
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.results import SessionResults, TestResult
from pytest_axiomperf.tracker import PerformanceTracker

TRIALS = 200
SAMPLES = 200
MEDIAN = 0.020
THRESHOLD = 10.0
NOISE_FLOOR_MS = 0.0
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


ROUTES = 3
ROUTE_SAMPLES = (1600, 200, 40)  # a busy read, a steady write, a rare order
ORDER_ROUTE = 2
AA_TRIALS = 1000


def _routes_results(
    rng: random.Random, sigma: float, slow_route: int, shift: float
) -> SessionResults:
    """One test shaped like an ``axiom_client`` test: per route, the request latency and
    its time to first byte; the order route's latency also as ``order_execution_times``."""
    tracker = PerformanceTracker()
    mu = math.log(MEDIAN)
    for route, n in enumerate(ROUTE_SAMPLES):
        scale = (1.0 + shift if route == slow_route else 1.0) * (1 + route)
        tag = f"r{route}"
        for _ in range(n):
            ttfb = rng.lognormvariate(mu, sigma) * scale
            tracker.record("http_ttfb_times", ttfb, tag)
            tracker.record("api_response_times", ttfb + 0.0002, tag)
            if route == ORDER_ROUTE:
                tracker.record("order_execution_times", ttfb + 0.0002, tag)
    results = SessionResults(environment={})
    results.add(TestResult(nodeid="t", tracker=tracker))
    return results


def run_routes(sigma: float, slow_route: int, shift: float, trials: int) -> tuple[int, int, int]:
    """Over ``trials``: runs failed by the whole metrics' comparisons alone, and by the
    gate with its per-route comparisons; and the comparisons made per test."""
    rng = random.Random(f"routes-{sigma}-{slow_route}-{shift}")
    whole = gate = made = 0
    for _ in range(trials):
        old = _routes_results(rng, sigma, -1, 0.0)
        new = _routes_results(rng, sigma, slow_route, shift)
        comparison = compare(old, new, threshold=THRESHOLD, noise_floor=NOISE_FLOOR_MS)
        whole += any(m.status == REGRESSION and m.tag is None for m in comparison.metrics)
        gate += comparison.failed
        made = len(comparison.metrics)
    return whole, gate, made


def main() -> None:
    print(
        f"{TRIALS} trials per row, {SAMPLES} samples per side, lognormal median "
        f"{MEDIAN * 1e3:g} ms; gate (one run a side) = p95 and median > {THRESHOLD:g}% "
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
    print()
    print(
        f"Per-route comparisons: one test shaped like an axiom_client test, {ROUTES} routes of "
        f"{', '.join(map(str, ROUTE_SAMPLES))} samples (medians 20/40/60 ms), each in "
        "api_response_times and http_ttfb_times, the last also in order_execution_times; "
        "one route slowed; a run fails when any comparison regresses"
    )
    header = f"{'sigma':>5} {'slowed route':>14} {'shift':>6} | {'whole only':>10} {'+ routes':>9}"
    print(header)
    print("-" * len(header))
    for sigma in (0.25, 0.5):
        whole, gate, made = run_routes(sigma, -1, 0.0, AA_TRIALS)
        print(
            f"{sigma:>5g} {'(none: A/A)':>14} {'+0%':>6} | {whole / AA_TRIALS:>10.1%} "
            f"{gate / AA_TRIALS:>9.1%}   ({AA_TRIALS} trials, {made} comparisons per test)"
        )
        for route in range(ROUTES):
            for shift in (0.25, 0.50):
                whole, gate, _ = run_routes(sigma, route, shift, TRIALS)
                label = f"r{route} (n={ROUTE_SAMPLES[route]})"
                print(
                    f"{sigma:>5g} {label:>14} {f'+{shift:.0%}':>6} | "
                    f"{whole / TRIALS:>10.1%} {gate / TRIALS:>9.1%}"
                )


if __name__ == "__main__":
    main()
