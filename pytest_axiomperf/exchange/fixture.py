"""The ``axiom_exchange`` fixture: one embedded exchange per test session (per xdist worker).

An exchange that dies (killed, crashed) is replaced by a fresh one before the
next test that uses it, and the test during which it died says so.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from pytest_axiomperf.exchange.simulator import ExchangeSimulator
from pytest_axiomperf.redact import safe_url

#: The exchange a test used, so its profile can be stored with the test's results.
EXCHANGE_KEY = pytest.StashKey[ExchangeSimulator]()


def configure_elsewhere(base_url: str | None, ws_url: str | None) -> str | None:
    """What ``axiom_exchange.configure`` warns when the run tests another venue, else None."""
    given = [
        f"{flag}={safe_url(url)}"
        for flag, url in (("--axiom-base-url", base_url), ("--axiom-ws-url", ws_url))
        if url is not None
    ]
    if not given:
        return None
    users = ["axiom_target"]
    users += ["axiom_client"] if base_url is not None else []
    users += ["axiom_ws"] if ws_url is not None else []
    return (
        f"axiom_exchange.configure() shapes the embedded exchange only, but this run tests "
        f"{' and '.join(given)}: {', '.join(users)} talk to that venue, which this profile "
        "does not slow down or break (run without the option to inject latency and faults)"
    )


@pytest.fixture(scope="session")
def axiom_exchange(pytestconfig: pytest.Config) -> Iterator[ExchangeSimulator]:
    """The embedded exchange, running in its own process for the whole session.

    Its bearer token is ``$AXIOM_AUTH_TOKEN`` when set, else a random one
    (``axiom_exchange.token``). The fixture is sync, so it works whatever the
    pytest-asyncio mode and loop scope; under pytest-xdist each worker gets its
    own exchange. A profile set with ``configure`` lasts until the end of the
    test that set it: the exchange is reset after every test that used it. If
    its process dies, the next test using it gets a fresh one (same token, new
    port).
    """
    from pytest_axiomperf.plugin import get_plugin

    settings = get_plugin(pytestconfig).settings
    with ExchangeSimulator(settings.auth_token) as exchange:
        exchange.elsewhere = configure_elsewhere(settings.base_url, settings.ws_url)
        yield exchange


def exchange_for(request: pytest.FixtureRequest) -> ExchangeSimulator:
    """The session's exchange, running (restarted if it died); remembered for the test."""
    exchange: ExchangeSimulator = request.getfixturevalue("axiom_exchange")
    exchange.ensure_running()
    request.node.stash[EXCHANGE_KEY] = exchange
    return exchange


@pytest.fixture(autouse=True)
def _axiom_exchange_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Scope exchange profiles to the test that set them; remember the test's exchange."""
    if "axiom_exchange" not in request.fixturenames:
        yield
        return
    exchange = exchange_for(request)
    yield
    if exchange.configured is not None and exchange.running:
        exchange.reset()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test that failed because the exchange died says so, in its summary line too.

    Otherwise it shows only the client's error (``ClientConnectorError
    127.0.0.1:PORT``), which does not tell a dead exchange from a bug.
    """
    report = yield
    exchange = item.stash.get(EXCHANGE_KEY, None)
    if exchange is None or not report.failed or report.when == "teardown":
        return report
    why = exchange.died()
    if why is None:
        return report
    text = (
        f"the embedded exchange died during this test ({why}); "
        "the next test that uses it gets a fresh one"
    )
    # Duck-typed: pytest's ExceptionRepr lives in a private module.
    longrepr: Any = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        crash.message = f"{text.partition(';')[0]}: {crash.message}"
    addsection = getattr(longrepr, "addsection", None)
    if addsection is not None:
        addsection("axiom_exchange", text)
    else:
        report.sections.append(("axiom_exchange", text))
    return report
