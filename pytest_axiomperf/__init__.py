"""pytest-axiomperf: performance tests for async trading bots."""

from __future__ import annotations

from pytest_axiomperf.errors import (
    AxiomPerfError,
    BaselineError,
    BudgetExceeded,
    ConfigError,
    ExchangeError,
    LoadError,
    MarkerError,
)
from pytest_axiomperf.exchange import ExchangeProfile, ExchangeSimulator
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.load import Lane, LoadGenerator, LoadResult
from pytest_axiomperf.tracker import MetricStats, PerformanceTracker

__version__ = "0.1.0"

__all__ = [
    "AxiomPerfError",
    "BaselineError",
    "BudgetExceeded",
    "ConfigError",
    "ExchangeError",
    "ExchangeProfile",
    "ExchangeSimulator",
    "Histogram",
    "Lane",
    "LoadError",
    "LoadGenerator",
    "LoadResult",
    "MarkerError",
    "MetricStats",
    "PerformanceTracker",
    "__version__",
]
