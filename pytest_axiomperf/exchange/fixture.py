"""The ``axiom_exchange`` fixture: one embedded exchange per test session (per xdist worker)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pytest_axiomperf.exchange.simulator import ExchangeSimulator


@pytest.fixture(scope="session")
def axiom_exchange() -> Iterator[ExchangeSimulator]:
    """The embedded exchange, running in its own process for the whole session.

    Its bearer token is ``$AXIOM_AUTH_TOKEN`` when set, else a random one
    (``axiom_exchange.token``). The fixture is sync, so it works whatever the
    pytest-asyncio mode and loop scope; under pytest-xdist each worker gets its
    own exchange. Profiles set with ``configure`` persist until ``reset()``.
    """
    with ExchangeSimulator(os.environ.get("AXIOM_AUTH_TOKEN") or None) as exchange:
        yield exchange
