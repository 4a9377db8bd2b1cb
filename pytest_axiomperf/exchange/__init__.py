"""The embedded exchange: a local venue to test trading bots against, offline.

`ExchangeSimulator` is the test process's handle to an exchange served by its
own subprocess (``python -m pytest_axiomperf.exchange``); `ExchangeProfile`
describes the latency and faults it injects. The pytest fixture
``axiom_exchange`` (session scope) yields a started `ExchangeSimulator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_axiomperf._lazy import lazy_attributes

if TYPE_CHECKING:
    from pytest_axiomperf.exchange.models import ExchangeProfile
    from pytest_axiomperf.exchange.simulator import ExchangeSimulator

__all__ = ["ExchangeProfile", "ExchangeSimulator"]

# Imported on first use: the plugin's fixture module lives in this package and is
# loaded by every pytest run, which must not pay for the simulator.
_LAZY = {
    "ExchangeProfile": "pytest_axiomperf.exchange.models",
    "ExchangeSimulator": "pytest_axiomperf.exchange.simulator",
}


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
