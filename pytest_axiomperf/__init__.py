"""pytest-axiomperf: performance tests for async trading bots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_axiomperf._lazy import lazy_attributes
from pytest_axiomperf.errors import (
    AxiomPerfError,
    AxiomPerfWarning,
    BaselineError,
    BudgetExceeded,
    ConfigError,
    ExchangeError,
    HttpStatusError,
    LoadError,
    MarkerError,
    WebSocketError,
)

if TYPE_CHECKING:
    from pytest_axiomperf.client import ApiResponse, OptimizedClient, RetryPolicy
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
    "AxiomPerfWarning",
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

# The pytest plugin lives in this package, so every pytest run of an environment with
# pytest-axiomperf installed imports this module: the classes (and with them aiohttp,
# websockets, psutil) are imported on first access, not here.
_LAZY = {
    "ApiResponse": "pytest_axiomperf.client",
    "OptimizedClient": "pytest_axiomperf.client",
    "RetryPolicy": "pytest_axiomperf.client",
    "ExchangeProfile": "pytest_axiomperf.exchange.models",
    "ExchangeSimulator": "pytest_axiomperf.exchange.simulator",
    "Histogram": "pytest_axiomperf.histogram",
    "Lane": "pytest_axiomperf.load",
    "LoadGenerator": "pytest_axiomperf.load",
    "LoadResult": "pytest_axiomperf.load",
    "MemoryDiff": "pytest_axiomperf.memory",
    "MemorySnapshots": "pytest_axiomperf.memory",
    "MetricStats": "pytest_axiomperf.tracker",
    "PerformanceTracker": "pytest_axiomperf.tracker",
    "Secret": "pytest_axiomperf.redact",
    "WebSocketClient": "pytest_axiomperf.websocket",
}


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
