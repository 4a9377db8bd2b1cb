"""The embedded exchange: a local venue to test trading bots against, offline.

`ExchangeSimulator` is the test process's handle to an exchange served by its
own subprocess (``python -m pytest_axiomperf.exchange``); `ExchangeProfile`
describes the latency and faults it injects. The pytest fixture
``axiom_exchange`` (session scope) yields a started `ExchangeSimulator`.
"""

from __future__ import annotations

from pytest_axiomperf.exchange.models import ExchangeProfile
from pytest_axiomperf.exchange.simulator import ExchangeSimulator

__all__ = ["ExchangeProfile", "ExchangeSimulator"]
