"""The plugin's fixtures. Each is sync, so it works under any pytest-asyncio mode and
loop scope; async resources are created lazily in the test's running loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_axiomperf.client import OptimizedClient
from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.tracker import PerformanceTracker

if TYPE_CHECKING:
    from pytest_axiomperf.respx_api import ExchangeRouter


@pytest.fixture
def axiom_tracker(request: pytest.FixtureRequest) -> PerformanceTracker:
    """The test's PerformanceTracker: budgets, the report and the JSON results read it."""
    from pytest_axiomperf.plugin import tracker_for

    return tracker_for(request.node)


@pytest.fixture
def axiom_client(request: pytest.FixtureRequest) -> Iterator[OptimizedClient]:
    """An `OptimizedClient` on ``--axiom-base-url`` (else the embedded exchange) with the token.

    It opens lazily in the test's event loop, records every request into the
    test's tracker (``axiom_tracker``), and is closed in that loop at teardown.
    """
    from pytest_axiomperf.plugin import get_plugin, tracker_for

    settings = get_plugin(request.config).settings
    if settings.base_url is not None:
        base_url, token = settings.base_url, settings.auth_token
    else:
        exchange = request.getfixturevalue("axiom_exchange")
        base_url, token = exchange.base_url, exchange.token
    client = OptimizedClient(base_url, token=token, tracker=tracker_for(request.node))
    try:
        yield client
    finally:
        client.close_blocking()


@pytest.fixture
def axiom_respx(request: pytest.FixtureRequest) -> Iterator[ExchangeRouter]:
    """A respx router serving the exchange's REST API to httpx clients, recording latency.

    Needs the ``respx`` extra (``pip install pytest-axiomperf[respx]``). It mocks
    ``--axiom-base-url`` when given, else ``axiom_respx.base_url``; requests need
    ``Authorization: Bearer <axiom_respx.token>`` like the real exchange.
    """
    from pytest_axiomperf.plugin import get_plugin, tracker_for

    try:
        from pytest_axiomperf.respx_api import ExchangeRouter
    except ImportError as exc:
        raise AxiomPerfError(
            f"axiom_respx needs respx and httpx ({exc.name} is missing): "
            "pip install 'pytest-axiomperf[respx]'"
        ) from None
    settings = get_plugin(request.config).settings
    router = ExchangeRouter(
        base_url=settings.base_url,
        token=settings.auth_token,
        tracker=tracker_for(request.node),
    )
    with router:
        yield router
