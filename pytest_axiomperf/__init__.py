"""pytest-axiomperf: performance tests for async trading bots."""

from __future__ import annotations

from pytest_axiomperf.errors import (
    AxiomPerfError,
    BaselineError,
    ConfigError,
    ExchangeError,
    MarkerError,
)

__version__ = "0.1.0"

__all__ = [
    "AxiomPerfError",
    "BaselineError",
    "ConfigError",
    "ExchangeError",
    "MarkerError",
    "__version__",
]
