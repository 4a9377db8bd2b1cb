"""The plugin's errors: one small hierarchy users can catch."""

from __future__ import annotations


class AxiomPerfError(Exception):
    """Base class of every error pytest-axiomperf raises on purpose."""


class ConfigError(AxiomPerfError):
    """A setting (option, ini key, environment variable) has a bad value."""


class MarkerError(AxiomPerfError):
    """A budget marker has a bad argument; raised at collection."""


class BaselineError(AxiomPerfError):
    """A baseline or results file is missing, corrupt or incompatible."""


class ExchangeError(AxiomPerfError):
    """The embedded exchange could not start, or did not answer."""


class BudgetExceeded(AxiomPerfError, AssertionError):
    """A test exceeded one of its budgets; the test fails with this error."""


class LoadError(AxiomPerfError, ValueError):
    """A load run was refused: a bad argument, or a target that is not on this machine."""


class HttpStatusError(AxiomPerfError):
    """An API answered with an error status (``ApiResponse.raise_for_status``)."""

    def __init__(self, status: int, message: str) -> None:
        """``status`` is the HTTP status; ``message`` names the route, never the URL's query."""
        super().__init__(message)
        self.status = status


class WebSocketError(AxiomPerfError):
    """A WebSocket connection could not be opened, was refused, or is closed for good."""


class AxiomPerfWarning(UserWarning):
    """Something in a test will not do what it says (e.g. shaping a venue the run does not test)."""
