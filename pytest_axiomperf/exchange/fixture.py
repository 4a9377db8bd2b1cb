"""The ``axiom_exchange`` fixture: one embedded exchange per test session (per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_axiomperf.exchange.simulator import ExchangeSimulator

#: The exchange a test used, so its profile can be stored with the test's results.
EXCHANGE_KEY = pytest.StashKey[ExchangeSimulator]()


@pytest.fixture(scope="session")
def axiom_exchange(pytestconfig: pytest.Config) -> Iterator[ExchangeSimulator]:
    """The embedded exchange, running in its own process for the whole session.

    Its bearer token is ``$AXIOM_AUTH_TOKEN`` when set, else a random one
    (``axiom_exchange.token``). The fixture is sync, so it works whatever the
    pytest-asyncio mode and loop scope; under pytest-xdist each worker gets its
    own exchange. A profile set with ``configure`` lasts until the end of the
    test that set it: the exchange is reset after every test that used it.
    """
    from pytest_axiomperf.plugin import get_plugin

    token = get_plugin(pytestconfig).settings.auth_token
    with ExchangeSimulator(token) as exchange:
        yield exchange


@pytest.fixture(autouse=True)
def _axiom_exchange_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Scope exchange profiles to the test that set them; remember the test's exchange."""
    if "axiom_exchange" not in request.fixturenames:
        yield
        return
    exchange: ExchangeSimulator = request.getfixturevalue("axiom_exchange")
    request.node.stash[EXCHANGE_KEY] = exchange
    yield
    if exchange.configured is not None and exchange.running:
        exchange.reset()
