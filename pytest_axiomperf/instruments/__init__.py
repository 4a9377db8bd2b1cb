"""Instruments for a bot's own clients: they record into a `PerformanceTracker` what the
plugin's own clients record, without changing how the bot sends or reads.

Each lives in a module of its own and imports its library only when used:

- :mod:`~pytest_axiomperf.instruments.aiohttp`: a ``TraceConfig`` for a bot's
  ``aiohttp.ClientSession`` (``tracker.aiohttp_trace()``);
- :mod:`~pytest_axiomperf.instruments.httpx`: a transport for a bot's
  ``httpx.AsyncClient``/``httpx.Client`` (``tracker.httpx_transport()``);
- :mod:`~pytest_axiomperf.instruments.websockets`: a ``connect`` for a bot's own
  ``websockets`` feed (``tracker.websockets_connect()``).
"""

from __future__ import annotations

from pytest_axiomperf.routes import EXCHANGE_ROUTES

#: AxiomTrade's REST routes, as the ``axiomtradeapi`` SDK calls them (and the embedded
#: exchange serves them). Listed because names of 16 characters and more
#: (``send-transaction``) would otherwise be taken for identifiers.
AXIOM_ROUTES: tuple[str, ...] = (
    "/api/batched-sol-balance",
    "/api/token-balance",
    "/api/send-transaction",
    "/refresh-access-token",
    "/token-info",
    "/pair-info",
    "/pair-stats",
    "/last-transaction",
    "/meme-open-positions",
    "/portfolio",
    "/server-time",
)

#: Routes that place an order: their latency also goes to ``order_execution_times``.
#: ``POST /orders`` is the embedded exchange's; ``POST /api/send-transaction`` AxiomTrade's.
ORDER_ROUTES: frozenset[str] = frozenset({"POST /orders", "POST /api/send-transaction"})

__all__ = ["AXIOM_ROUTES", "ORDER_ROUTES", "ROUTES"]


#: The route templates the instruments tag requests by, unless given others: the embedded
#: exchange's and AxiomTrade's.
ROUTES: tuple[str, ...] = (*EXCHANGE_ROUTES, *AXIOM_ROUTES)
