"""The ``axiom_exchange`` fixture: one embedded exchange per test session (per xdist worker).

An exchange that dies (killed, crashed) is replaced by a fresh one before the
next test that uses it, and the test during which it died says so.

Registered in every pytest run of an environment with the plugin installed, so it
imports the simulator only when the fixture is first requested, and adds no fixture
to a test that does not ask for one: the per-test work is done by hooks.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_axiomperf.redact import safe_url
from pytest_axiomperf.stash import EXCHANGE_KEY, SESSION_EXCHANGE_KEY, get_plugin

if TYPE_CHECKING:
    from pytest_axiomperf.exchange.simulator import ExchangeSimulator


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
    test that set it: the exchange is reset after every test that configured it. If
    its process dies, the next test using it gets a fresh one (same token, new
    port).
    """
    from pytest_axiomperf.exchange.simulator import ExchangeSimulator

    settings = get_plugin(pytestconfig).settings
    with ExchangeSimulator(settings.auth_token) as exchange:
        exchange.elsewhere = configure_elsewhere(settings.base_url, settings.ws_url)
        pytestconfig.stash[SESSION_EXCHANGE_KEY] = exchange
        try:
            yield exchange
        finally:
            del pytestconfig.stash[SESSION_EXCHANGE_KEY]


def exchange_for(request: pytest.FixtureRequest) -> ExchangeSimulator:
    """The session's exchange, running (restarted if it died); remembered for the test."""
    exchange: ExchangeSimulator = request.getfixturevalue("axiom_exchange")
    exchange.ensure_running()
    request.node.stash[EXCHANGE_KEY] = exchange
    return exchange


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """For a test using ``axiom_exchange``: before its fixtures are set up, replace a
    session exchange that died; after, remember the exchange, so the test's results
    store the latency profile it ran under."""
    uses = "axiom_exchange" in getattr(item, "fixturenames", ())
    if uses:
        exchange = item.config.stash.get(SESSION_EXCHANGE_KEY, None)
        if exchange is not None:
            exchange.ensure_running()
    result = yield
    if uses:
        started = getattr(item, "funcargs", {}).get("axiom_exchange")
        if started is not None:
            item.stash[EXCHANGE_KEY] = started
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Scope a profile set with ``configure`` to the test that set it: reset the exchange
    once the test's fixtures are torn down (however the test reached the exchange)."""
    try:
        return (yield)
    finally:
        exchange = item.config.stash.get(SESSION_EXCHANGE_KEY, None)
        if exchange is not None and exchange.configured is not None and exchange.running:
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
