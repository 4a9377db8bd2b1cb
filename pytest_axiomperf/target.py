"""The venue under test: where a user's own clients should send their requests.

`Target` is what the ``axiom_target`` fixture gives: ``--axiom-base-url`` /
``--axiom-ws-url`` with ``$AXIOM_AUTH_TOKEN`` when given, else the embedded
exchange. Its repr, and every line the plugin prints about it, shows the URLs
without credentials (`safe_url`: no user, password or query) and never the
token; ``headers()`` carries it as a `Secret`, whose repr is ``'<redacted>'``.
"""

from __future__ import annotations

from pytest_axiomperf.errors import AxiomPerfError
from pytest_axiomperf.redact import bearer, remember, remember_url, safe_url

__all__ = ["EMBEDDED", "Target", "describe_settings"]

#: What the report header calls the embedded exchange.
EMBEDDED = "the embedded exchange"


class Target:
    """The venue under test: its URLs, its token, the headers and cookies that carry it.

    ``base_url`` and ``ws_url`` have no trailing slash. When only one of
    ``--axiom-base-url`` and ``--axiom-ws-url`` is given, the other one raises
    `AxiomPerfError` naming the missing option (rather than sending a bot's
    requests to two different venues).
    """

    __slots__ = ("_base_url", "_embedded", "_missing", "_token", "_ws_url")

    def __init__(
        self,
        base_url: str | None,
        ws_url: str | None,
        token: str | None,
        *,
        embedded: bool = False,
    ) -> None:
        """A venue; a URL given as None raises on use, naming its option."""
        self._base_url = base_url.rstrip("/") if base_url else None
        self._ws_url = ws_url.rstrip("/") if ws_url else None
        self._token = token
        self._embedded = embedded
        # Whatever shows them by accident (a log record, a failure) has them redacted.
        remember(token)
        remember_url(base_url)
        remember_url(ws_url)

    @property
    def embedded(self) -> bool:
        """Whether this is the embedded exchange (``axiom_exchange``)."""
        return self._embedded

    @property
    def base_url(self) -> str:
        """The REST API's base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self._base_url is None:
            raise AxiomPerfError(
                "the venue under test has no REST URL: --axiom-ws-url is set but "
                "--axiom-base-url is not (give both, or neither for the embedded exchange)"
            )
        return self._base_url

    @property
    def ws_url(self) -> str:
        """The WebSocket URL, e.g. ``ws://127.0.0.1:PORT/ws``."""
        if self._ws_url is None:
            raise AxiomPerfError(
                "the venue under test has no WebSocket URL: --axiom-base-url is set but "
                "--axiom-ws-url is not (give both, or neither for the embedded exchange)"
            )
        return self._ws_url

    @property
    def token(self) -> str | None:
        """The bearer token (``$AXIOM_AUTH_TOKEN``, or the embedded exchange's); None: none."""
        return self._token

    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` (a `Secret`: its repr is redacted), or
        ``{}`` without a token."""
        return {"Authorization": bearer(self._token)} if self._token else {}

    def cookies(self) -> dict[str, str]:
        """AxiomTrade's cookie for the token (``auth-access-token``), or ``{}`` without one."""
        return {"auth-access-token": self._token} if self._token else {}

    def describe(self) -> str:
        """One line naming the venue, without credentials."""
        if self._embedded:
            return EMBEDDED
        shown = []
        if self._base_url is not None:
            shown.append(f"REST {safe_url(self._base_url)}")
        if self._ws_url is not None:
            shown.append(f"WS {safe_url(self._ws_url)}")
        return ", ".join(shown)

    def __repr__(self) -> str:
        base = None if self._base_url is None else safe_url(self._base_url)
        ws = None if self._ws_url is None else safe_url(self._ws_url)
        token = "<set>" if self._token else None
        kind = ", embedded" if self._embedded else ""
        return f"Target(base_url={base!r}, ws_url={ws!r}, token={token}{kind})"


def describe_settings(base_url: str | None, ws_url: str | None) -> str:
    """The venue a run's settings point at, for the report header (credentials redacted)."""
    if base_url is None and ws_url is None:
        return EMBEDDED
    parts = []
    parts.append(f"REST {safe_url(base_url)}" if base_url else f"REST {EMBEDDED}")
    parts.append(f"WS {safe_url(ws_url)}" if ws_url else f"WS {EMBEDDED}")
    return ", ".join(parts)
