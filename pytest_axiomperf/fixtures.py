"""The plugin's fixtures. Each is sync, so it works under any pytest-asyncio mode and
loop scope; async resources are created lazily in the test's running loop.

Every pytest run of an environment with the plugin installed registers this module:
the clients (aiohttp, websockets), psutil and the exchange are imported in the body
of the fixture that needs them, never here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.stash import extra_for, get_plugin, tracker_for
from pytest_axiomperf.target import Target
from pytest_axiomperf.tracker import PerformanceTracker

if TYPE_CHECKING:
    from pytest_axiomperf.client import OptimizedClient
    from pytest_axiomperf.load import LoadGenerator
    from pytest_axiomperf.memory import MemorySnapshots
    from pytest_axiomperf.respx_api import ExchangeRouter
    from pytest_axiomperf.websocket import WebSocketClient


@pytest.fixture
def axiom_tracker(request: pytest.FixtureRequest) -> PerformanceTracker:
    """The test's PerformanceTracker: budgets, the report and the JSON results read it."""
    return tracker_for(request.node)


def _terminal_progress(config: pytest.Config) -> Callable[[str | None], None] | None:
    """A live progress line on pytest's terminal when it is a TTY (never in CI or workers)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or os.environ.get("CI") or not bool(reporter.isatty):
        return None
    shown = [False]

    def show(line: str | None) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if line is None:
                if shown[0]:
                    reporter.write_raw("\r\x1b[K", flush=True)
                return
            # The first line goes below the test's name, which the last clear would erase.
            reporter.write_raw(("\r\x1b[K" if shown[0] else "\n") + line, flush=True)
            shown[0] = True

    return show


@pytest.fixture
def axiom_load(request: pytest.FixtureRequest) -> LoadGenerator:
    """A LoadGenerator for the test: ``await axiom_load.run(fn, rate=, duration=, ...)``.

    Latencies go to the test's tracker (``load_latency`` from the intended start,
    ``load_service_time`` from the send, tagged with the run's name); each run's
    result is kept in the test's results (``extra["load"]``), where
    ``throughput_budget`` marks and the report read it; each ``find_capacity``
    result in ``extra["capacity"]`` (the report's capacity curves). Targets must be
    loopback or the configured base URL (``--axiom-base-url``).
    """
    from pytest_axiomperf.load import LoadGenerator

    extra = extra_for(request.node)
    runs: list[dict[str, Any]] = extra.setdefault("load", [])
    return LoadGenerator(
        tracker_for(request.node),
        allowed_base_url=get_plugin(request.config).settings.base_url,
        progress=_terminal_progress(request.config),
        on_result=lambda result: runs.append(result.to_dict()),
        on_capacity=lambda result: extra.setdefault("capacity", []).append(result.to_dict()),
    )


def _endpoint(
    request: pytest.FixtureRequest, configured: str | None, kind: str
) -> tuple[str, str | None]:
    """The configured URL with ``$AXIOM_AUTH_TOKEN``, else the embedded exchange's.

    A test reaching the exchange this way is remembered like one asking for
    ``axiom_exchange``, so its results store the latency profile it ran under.
    """
    from pytest_axiomperf.exchange.fixture import exchange_for

    if configured is not None:
        return configured, get_plugin(request.config).settings.auth_token
    exchange = exchange_for(request)
    return (exchange.base_url if kind == "rest" else exchange.ws_url), exchange.token


@pytest.fixture
def axiom_target(request: pytest.FixtureRequest) -> Target:
    """The venue under test, for the bot's own clients: ``base_url``, ``ws_url``, ``token``,
    ``headers()``, ``cookies()``.

    ``--axiom-base-url``/``--axiom-ws-url`` with ``$AXIOM_AUTH_TOKEN`` when given (the
    embedded exchange is then not started for it), else the embedded exchange. Its repr
    shows neither the token nor credentials in the URLs.
    """
    settings = get_plugin(request.config).settings
    if settings.base_url is not None or settings.ws_url is not None:
        return Target(settings.base_url, settings.ws_url, settings.auth_token)
    from pytest_axiomperf.exchange.fixture import exchange_for

    # Running, even when this is the first fixture a test asks for after the session's
    # exchange died (replaced before setup only for tests that name axiom_exchange).
    exchange = exchange_for(request)
    return Target(exchange.base_url, exchange.ws_url, exchange.token, embedded=True)


@pytest.fixture
def axiom_client(request: pytest.FixtureRequest) -> Iterator[OptimizedClient]:
    """An `OptimizedClient` on ``--axiom-base-url`` (else the embedded exchange) with the token.

    It opens lazily in the test's event loop, records every request into the
    test's tracker (``axiom_tracker``), and is closed in that loop at teardown.
    """
    from pytest_axiomperf.client import OptimizedClient

    base_url, token = _endpoint(request, get_plugin(request.config).settings.base_url, "rest")
    client = OptimizedClient(base_url, token=token, tracker=tracker_for(request.node))
    request.node.stash.setdefault(_CLOSE_FIRST, []).append(client.close_blocking)
    try:
        yield client
    finally:
        client.close_blocking()


def _sdk_module() -> Any:
    try:
        from pytest_axiomperf.instruments import sdk
    except ImportError as exc:
        raise AxiomPerfError(
            f"axiom_sdk needs the axiomtradeapi SDK ({exc.name} is missing): "
            "pip install 'pytest-axiomperf[sdk]'"
        ) from None
    return sdk


@pytest.fixture
def axiom_sdk(
    axiom_target: Target,
    axiom_tracker: PerformanceTracker,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """The axiomtradeapi SDK's own ``AxiomTradeClient`` on the venue under test.

    Its REST calls are timed into ``axiom_tracker`` by route; every request that
    would leave the machine is refused (``RefusedRequest``, counted and warned
    about); its token is the venue's and never refreshed. Its saved tokens live
    in the test's ``tmp_path``. See :mod:`pytest_axiomperf.instruments.sdk`.
    """
    return _sdk_module().sdk_client(
        axiom_target, axiom_tracker, tmp_path / "axiomtradeapi", monkeypatch.setattr
    )


@pytest.fixture
def axiom_sdk_ws(axiom_sdk: Any, axiom_target: Target, axiom_tracker: PerformanceTracker) -> Any:
    """The SDK's WebSocket client (``axiom_sdk.get_websocket_client()``), not yet started,
    on the venue under test: no pre-flight requests, no fallback clusters; each room
    push's delivery latency in ``axiom_tracker`` (``websocket_latency``, tagged by room).
    """
    return _sdk_module().sdk_websocket(axiom_sdk, axiom_target, axiom_tracker)


@pytest.fixture
def axiom_respx(request: pytest.FixtureRequest) -> Iterator[ExchangeRouter]:
    """A respx router serving the exchange's REST API to httpx clients, recording latency.

    Needs the ``respx`` extra (``pip install pytest-axiomperf[respx]``). It mocks
    ``--axiom-base-url`` when given, else ``axiom_respx.base_url``; requests need
    ``Authorization: Bearer <axiom_respx.token>`` like the real exchange.
    """
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


@pytest.fixture
def axiom_memory() -> Iterator[MemorySnapshots]:
    """A MemorySnapshots comparer: ``take(label)``, ``compare(a, b)``,
    ``assert_growth_below(mb, a, b)``, ``growth_per_iteration(fn)`` and, for async fn,
    ``await agrowth_per_iteration(fn)``. In performance mode the test body runs under
    tracemalloc (its latency is flagged); otherwise tracemalloc starts at the first
    snapshot. Tracing it started is stopped at teardown; anyone else's is left on."""
    from pytest_axiomperf.memory import MemorySnapshots

    snapshots = MemorySnapshots()
    try:
        yield snapshots
    finally:
        snapshots.close()


@pytest.fixture
def axiom_ws(
    request: pytest.FixtureRequest, axiom_tracker: PerformanceTracker
) -> Iterator[WebSocketClient]:
    """A ``WebSocketClient`` on ``--axiom-ws-url`` (token: ``$AXIOM_AUTH_TOKEN``) or the
    embedded exchange, recording into ``axiom_tracker``.

    It connects on its first ``await`` (in the test's running loop, whatever the
    pytest-asyncio mode and loop scope) and is closed at teardown in that loop.
    """
    from pytest_axiomperf.websocket import WebSocketClient

    url, token = _endpoint(request, get_plugin(request.config).settings.ws_url, "ws")
    client = WebSocketClient(url, token=token, tracker=axiom_tracker)
    request.node.stash.setdefault(_CLOSE_FIRST, []).append(client.close_from_sync)
    yield client
    client.close_from_sync()


#: The closers of the test's clients, called before any fixture is finalized.
_CLOSE_FIRST: pytest.StashKey[list[Callable[[], None]]] = pytest.StashKey()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Close the test's clients (WebSocket, aiohttp) before any fixture is finalized.

    pytest-asyncio closes a function-scoped event loop before the finalizers of
    fixtures set up earlier run (before 1.0 without cancelling its tasks first),
    and a connection can only be closed cleanly in its own loop; here every loop
    is still open and none is running.
    """
    for close in item.stash.get(_CLOSE_FIRST, []):
        close()
    return (yield)
