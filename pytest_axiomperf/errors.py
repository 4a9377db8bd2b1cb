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
