"""pytest-axiomperf: performance tests for async trading bots."""

from __future__ import annotations

from pytest_axiomperf.client import ApiResponse, OptimizedClient, RetryPolicy
from pytest_axiomperf.errors import (
    AxiomPerfError,
    BaselineError,
    BudgetExceeded,
    ConfigError,
    ExchangeError,
    HttpStatusError,
    LoadError,
    MarkerError,
    WebSocketError,
)
from pytest_axiomperf.exchange import ExchangeProfile, ExchangeSimulator
from pytest_axiomperf.histogram import Histogram
from pytest_axiomperf.load import Lane, LoadGenerator, LoadResult
from pytest_axiomperf.memory import MemoryDiff, MemorySnapshots
from pytest_axiomperf.redact import Secret
from pytest_axiomperf.tracker import MetricStats, PerformanceTracker
from pytest_axiomperf.websocket import WebSocketClient

__version__ = "0.1.0"

__all__ = [
    "ApiResponse",
    "AxiomPerfError",
    "BaselineError",
    "BudgetExceeded",
    "ConfigError",
    "ExchangeError",
    "ExchangeProfile",
    "ExchangeSimulator",
    "Histogram",
    "HttpStatusError",
    "Lane",
    "LoadError",
    "LoadGenerator",
    "LoadResult",
    "MarkerError",
    "MemoryDiff",
    "MemorySnapshots",
    "MetricStats",
    "OptimizedClient",
    "PerformanceTracker",
    "RetryPolicy",
    "Secret",
    "WebSocketClient",
    "WebSocketError",
    "__version__",
]
