"""The ``axiomtradeapi`` SDK on the venue under test, timed, with nothing leaving the machine.

What ``axiom_sdk`` and ``axiom_sdk_ws`` set up (for axiomtradeapi 1.1.6; any
other version is checked for the names replaced here, and refused by name):

- every ``requests`` call made during the test, the SDK's module-level ones
  included, gets its transport adapter through `_Guard` (a wrapper of
  ``requests.Session.get_adapter``): requests to the venue under test go
  through a timing adapter mounted on their session (so the SDK's
  ``requests.request``, a session per call, still opens a connection per call)
  (``api_response_times`` by route, orders also in
  ``order_execution_times``, errors by type and status class); requests to
  another loopback address are left alone; any other is refused with
  `RefusedRequest` (a ``requests.ConnectionError``), counted in the errors and
  warned about, so that an SDK swallowing the error cannot hide it;
- ``auth_manager.make_authenticated_request`` (balances and data calls, whose
  URLs are written in full to ``*.axiom.trade``) sends to the venue instead;
  ``auth_manager.refresh_tokens`` (which posts to api.axiom.trade) raises;
- the WebSocket client's URLs point at the venue; its pre-flight requests are
  skipped, its fallback clusters filtered out, and each room push's delivery
  latency (receive time minus the push's ``emitted_at``, which the embedded
  exchange sets) goes to ``websocket_latency`` tagged by room.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from pytest_axiomperf.errors import AxiomPerfError, AxiomPerfWarning
from pytest_axiomperf.instruments import ORDER_ROUTES, ROUTES
from pytest_axiomperf.redact import safe_url
from pytest_axiomperf.routes import RouteTemplates
from pytest_axiomperf.target import Target
from pytest_axiomperf.tracker import (
    API_RESPONSE_TIMES,
    ORDER_EXECUTION_TIMES,
    WEBSOCKET_LATENCY,
    PerformanceTracker,
)

__all__ = ["SUPPORTED_VERSION", "RefusedRequest", "sdk_client", "sdk_websocket"]

#: The axiomtradeapi release these fixtures were written and tested against.
SUPPORTED_VERSION = "1.1.6"
#: Error name counted for each request refused.
ERR_REFUSED = "axiom_sdk refused an off-machine request"

_now = time.perf_counter_ns
Setattr = Callable[[object, str, object], None]


class RefusedRequest(AxiomPerfError, requests.ConnectionError):
    """A request the SDK made to a host off this machine, refused before it left."""


def _sdk_version() -> str:
    import axiomtradeapi  # type: ignore[import-untyped]

    return str(getattr(axiomtradeapi, "__version__", "unknown"))


def _require(owner: object, names: Iterable[str], fixture: str) -> None:
    """Fail clearly when the SDK lacks a name these fixtures replace."""
    kind = owner if isinstance(owner, type) else type(owner)
    for name in names:
        if not hasattr(owner, name):
            raise AxiomPerfError(
                f"{fixture}: axiomtradeapi {_sdk_version()} has no {kind.__name__}.{name}, "
                f"which {fixture} replaces to keep the SDK on the venue under test; it "
                f"supports axiomtradeapi {SUPPORTED_VERSION} (pip install "
                f"axiomtradeapi=={SUPPORTED_VERSION})"
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _VenueAdapter(HTTPAdapter):
    """Sends to the venue under test and times each request (to its response headers:
    the SDK's answers are small JSON bodies, read at once)."""

    def __init__(self, tracker: PerformanceTracker, routes: RouteTemplates, direct: bool) -> None:
        super().__init__()
        self._tracker = tracker
        self._routes = routes
        self._direct = direct

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if self._direct:  # a venue on this machine: never through a proxy from the environment
            kwargs["proxies"] = {}
        tag = self._routes.tag(request.method or "GET", urlsplit(request.url or "").path or "/")
        tracker = self._tracker
        start = _now()
        try:
            response = super().send(request, *args, **kwargs)
        except Exception as exc:
            tracker.record_error(exc)
            raise
        elapsed = (_now() - start) / 1e9
        tracker.record(API_RESPONSE_TIMES, elapsed, tag)
        if tag in ORDER_ROUTES:
            tracker.record(ORDER_EXECUTION_TIMES, elapsed, tag)
        if response.status_code >= 400:
            tracker.record_error("HTTP 5xx" if response.status_code >= 500 else "HTTP 4xx")
        return response


class _RefuseAdapter(BaseAdapter):
    """Refuses every request: it would leave the machine."""

    def __init__(self, tracker: PerformanceTracker, venue: str) -> None:
        super().__init__()
        self._tracker = tracker
        self._venue = venue

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        message = (
            f"axiom_sdk refused {request.method} {safe_url(request.url or '')}: it would "
            f"leave this machine (the venue under test is {self._venue})"
        )
        self._tracker.record_error(ERR_REFUSED)
        warnings.warn(AxiomPerfWarning(message), stacklevel=2)
        raise RefusedRequest(message, request=request)

    def close(self) -> None:
        """Nothing to close."""


class _Guard:
    """Chooses the adapter of every ``requests`` call: the venue's, the refusal, or the usual."""

    def __init__(self, target: Target, tracker: PerformanceTracker) -> None:
        venue = urlsplit(target.base_url)
        self._venue = (venue.scheme, venue.hostname, venue.port)
        self._origin = f"{venue.scheme}://{venue.netloc}/"
        self._base = target.base_url
        self._tracker = tracker
        self._routes = RouteTemplates(ROUTES)
        self._direct = _is_loopback(venue.hostname or "")
        self.refuse = _RefuseAdapter(tracker, safe_url(target.base_url))

    def venue(self, session: requests.Session) -> BaseAdapter:
        """The session's timing adapter, mounted on it at its first request to the venue.

        One per session, closed with it, as the session's own adapters are: the SDK's
        ``requests.request`` (a new session per call) still opens a connection per
        call, and its time is in the figure, as it is in the bot's.
        """
        adapter = session.adapters.get(self._origin)
        if not isinstance(adapter, _VenueAdapter):
            adapter = _VenueAdapter(self._tracker, self._routes, self._direct)
            session.mount(self._origin, adapter)
        return adapter

    def install(self, setattr_: Setattr) -> None:
        original = requests.Session.get_adapter
        guard = self

        def get_adapter(session: requests.Session, url: str) -> BaseAdapter:
            parts = urlsplit(url)
            if (parts.scheme, parts.hostname, parts.port) == guard._venue:
                return guard.venue(session)
            if _is_loopback(parts.hostname or ""):
                return original(session, url)
            return guard.refuse

        setattr_(requests.Session, "get_adapter", get_adapter)

    def local(self, url: str) -> str:
        """An AxiomTrade URL moved to the venue (path and query kept); others unchanged."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "axiom.trade" and not host.endswith(".axiom.trade"):
            return url
        base_path = urlsplit(self._base).path.rstrip("/")
        path = parts.path or "/"
        if base_path and path.startswith(base_path + "/"):
            path = path[len(base_path) :]
        return self._base + path + (f"?{parts.query}" if parts.query else "")


def sdk_client(
    target: Target, tracker: PerformanceTracker, storage_dir: Path, setattr_: Setattr
) -> Any:
    """The SDK's ``AxiomTradeClient`` on ``target``; see the module docstring.

    ``setattr_`` patches for the test's duration (``monkeypatch.setattr``).
    """
    from axiomtradeapi import AxiomTradeClient

    token = target.token
    if not token:
        raise AxiomPerfError(
            "axiom_sdk needs the venue's token: set AXIOM_AUTH_TOKEN (the embedded exchange "
            "has one of its own)"
        )
    client = AxiomTradeClient(
        auth_token=token,
        refresh_token=token,
        use_saved_tokens=False,
        storage_dir=str(storage_dir),
    )
    auth = client.auth_manager
    _require(auth, ("make_authenticated_request", "refresh_tokens"), "axiom_sdk")
    _require(client, ("endpoints",), "axiom_sdk")
    guard = _Guard(target, tracker)
    guard.install(setattr_)
    client.endpoints.BASE_URL_API = target.base_url + "/api"
    send = auth.make_authenticated_request

    def to_venue(method: str, url: str, **kwargs: Any) -> Any:
        return send(method, guard.local(url), **kwargs)

    def no_refresh() -> bool:
        raise AxiomPerfError(
            "axiom_sdk: the SDK tried to refresh its token at https://api.axiom.trade "
            "(refused: it would leave this machine; the venue's token must outlive the test)"
        )

    auth.make_authenticated_request = to_venue
    auth.refresh_tokens = no_refresh
    return client


_WS_NAMES = ("_preflight_curl", "_connect_curl", "_connect_websockets", "_dispatch")


def sdk_websocket(client: Any, target: Target, tracker: PerformanceTracker) -> Any:
    """The SDK's WebSocket client for ``client`` (from `sdk_client`), on ``target``, not started."""
    ws = client.get_websocket_client(log_level=logging.WARNING)
    _require(ws, ("ws_url", "ws_url_token_price", *_WS_NAMES), "axiom_sdk_ws")
    venue = target.ws_url
    ws.ws_url = ws.ws_url_token_price = venue
    connect_curl, connect_websockets, dispatch = (
        ws._connect_curl,
        ws._connect_websockets,
        ws._dispatch,
    )

    async def no_preflight(session: Any, tokens: Any) -> None:
        return None

    async def only_the_venue_curl(tokens: Any, urls: list[str]) -> bool:
        return bool(await connect_curl(tokens, [url for url in urls if url == venue]))

    async def only_the_venue_websockets(tokens: Any, urls: list[str]) -> bool:
        return bool(await connect_websockets(tokens, [url for url in urls if url == venue]))

    async def timed_dispatch(raw: str) -> None:
        received = time.time()
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if isinstance(message, dict):
            emitted = message.get("emitted_at")
            room = message.get("room")
            if isinstance(emitted, (int, float)) and isinstance(room, str):
                latency = received - emitted
                if latency >= 0:
                    tracker.record(WEBSOCKET_LATENCY, latency, room)
        await dispatch(raw)

    ws._preflight_curl = no_preflight
    ws._connect_curl = only_the_venue_curl
    ws._connect_websockets = only_the_venue_websockets
    ws._dispatch = timed_dispatch
    return ws
