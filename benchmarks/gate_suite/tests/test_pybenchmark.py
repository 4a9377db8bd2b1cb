"""The suite's decision path under pytest-benchmark, for its own gate (side by side)."""

from __future__ import annotations

import gatebot
import pytest

pytest.importorskip("pytest_benchmark")


def test_decision_benchmark(benchmark):
    benchmark.pedantic(gatebot.decide, args=(gatebot.UPDATE,), rounds=400, iterations=1)
