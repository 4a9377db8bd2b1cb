"""Keeping credentials out of every output: tracebacks, logs, reprs, messages.

pytest shows each frame's arguments (``--tb=long``) and locals (``-l``), and
captures library logs (``--log-level=DEBUG`` shows websockets' handshake
headers). So a credential must never be a plain string that a library's frame
or log record can show:

- `Secret` is a ``str`` whose repr is ``'<redacted>'``: header values built
  with `bearer` stay this object through aiohttp's and websockets' header
  maps, so a traceback shows ``'Authorization': '<redacted>'``;
- `safe_url` is a URL without user, password, query or fragment, for reprs and
  messages; `split_credentials` turns a URL's ``user:password@`` into a Basic
  ``Authorization`` header (a `Secret`), so the URL libraries see carries none;
- `RedactingFilter` rewrites log records carrying a `Secret`, a credential
  header line, a bearer token, an auth cookie, URL credentials or a value
  given to `remember`; at session start it goes on pytest's log handlers and
  on websockets' loggers (whose DEBUG lines print the handshake headers);
- a test report showing a remembered value (the token, URL credentials), in
  its failure or its captured output, has it replaced: the last safety net.

The module is registered as a plugin of its own (its hooks).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Generator, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

__all__ = [
    "REDACTED",
    "RedactedUrl",
    "RedactingFilter",
    "Secret",
    "bearer",
    "redact_text",
    "remember",
    "remember_url",
    "safe_url",
    "split_credentials",
]

REDACTED = "<redacted>"

#: Loggers whose records carry request headers: websockets logs every handshake
#: header at DEBUG (``> Authorization: Bearer ...``).
LIBRARY_LOGGERS = ("websockets", "websockets.client", "websockets.server")

# Values shorter than this are not redacted by value: a one-letter password would
# redact that letter everywhere.
_MIN_REMEMBERED = 4
_remembered: set[str] = set()

# Names of headers, cookies and query parameters that carry credentials.
_NAME = (
    r"\b(?:(?:proxy-)?authorization|(?:set-)?cookie"
    r"|[\w-]*(?:api[-_]?key|secret|password|passwd|[-_]token))"
)
_WORDS = r"(?:auth|key|token|secret|passw|sig)"
_CREDENTIAL = re.compile(rf"(?i){_WORDS}")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A header line or item: "> Authorization: Bearer x", "'Cookie': 'a=b'".
    (re.compile(rf"(?im)({_NAME}['\"]?\s*:\s*['\"]?)[^'\"\r\n]+"), rf"\1{REDACTED}"),
    # A cookie or query parameter: "auth-access-token=x", "?api_key=x".
    (re.compile(rf"(?i)({_NAME}=)[^&;,\s'\"]+"), rf"\1{REDACTED}"),
    (re.compile(rf"(?i)([?&][^=&\s]*{_WORDS}[^=&\s]*=)[^&#\s'\"]+"), rf"\1{REDACTED}"),
    (re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # URL credentials, with or without a scheme ("user:password@host").
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"(?<![\w.~%+-])[\w.~%+-]+:[^\s/@'\"]+@"), f"{REDACTED}@"),
)


class Secret(str):
    """A string whose repr hides it: a token or header value a traceback may show.

    Operations on it (``+``, f-strings, slicing) give plain strings: wrap the
    final value (`bearer` does).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(REDACTED)


class RedactedUrl(str):
    """A URL whose repr is `safe_url` of it: for a URL carrying a credential in its query."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(safe_url(self) + "?" + REDACTED)


def bearer(token: str) -> Secret:
    """The ``Authorization`` header value for ``token``; the token is remembered."""
    remember(token)
    return Secret(f"Bearer {token}")


def remember(*values: str | None) -> None:
    """Redact these values wherever a filtered log record shows them."""
    for value in values:
        if value and len(value) >= _MIN_REMEMBERED:
            _remembered.add(value)


def remember_url(url: str | None) -> None:
    """Remember the credentials a URL carries: its password, credential-named query values."""
    if not url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    # As decoded and as written: output shows either (a URL printed whole keeps %2F).
    remember(unquote(parts.password or ""), parts.password or "")
    query = [(name, value) for name, value in parse_qsl(parts.query) if _CREDENTIAL.search(name)]
    remember(*(value for _, value in query))
    remember(*(raw.split("=", 1)[1] for raw in parts.query.split("&") if "=" in raw
               and _CREDENTIAL.search(raw.split("=", 1)[0])))  # fmt: skip


def safe_url(url: str, *, path: bool = True) -> str:
    """``url`` without user, password, query and fragment (they may hold a credential).

    ``path=False`` keeps only ``scheme://host:port`` (a path may embed a key, too).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path if path else ''}"


def split_credentials(url: str) -> tuple[str, Secret | None]:
    """``(url without user:password@, the Basic Authorization header value or None)``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    remember(user, password)
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    remember(credentials)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl(), Secret(f"Basic {credentials}")


def _without_remembered(text: str) -> str:
    for value in _remembered:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_text(text: str) -> str:
    """``text`` with credentials replaced by ``<redacted>``."""
    text = _without_remembered(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message shows a credential; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place (the message, then the traceback text)."""
        args: Any = record.args
        if isinstance(args, tuple) and any(isinstance(a, Secret) for a in args):
            record.args = tuple(REDACTED if isinstance(a, Secret) else a for a in args)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it, not us
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


_FILTER = RedactingFilter()


def _add_filter(targets: Iterable[logging.Filterer | None]) -> None:
    for target in targets:
        if target is not None and _FILTER not in target.filters:
            target.addFilter(_FILTER)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Filter pytest's log handlers (report, live, file, caplog) and websockets' loggers."""
    logging_plugin = session.config.pluginmanager.get_plugin("logging-plugin")
    handlers = (
        getattr(logging_plugin, name, None)
        for name in ("caplog_handler", "report_handler", "log_file_handler", "log_cli_handler")
    )
    _add_filter(handlers)
    _add_filter(logging.getLogger(name) for name in LIBRARY_LOGGERS)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The last safety net: no remembered value in a report's failure or captured output.

    A frame of the test's own code (or a library's) can still show the token as a
    plain string (a header the test built itself, under ``--tb=long``): the
    failure is then kept as text with the value replaced. Runs last (outermost),
    after every other hook has written to the report.
    """
    report = yield
    if not _remembered:
        return report
    if isinstance(report.longrepr, tuple):
        # A skip's (path, line, reason): pytest reads it as a tuple, so keep its shape.
        path, line, reason = report.longrepr
        report.longrepr = (path, line, _without_remembered(reason))
    elif report.longrepr is not None:
        text = str(report.longrepr)
        cleaned = _without_remembered(text)
        if cleaned != text:
            report.longrepr = cleaned
    report.sections = [(name, _without_remembered(text)) for name, text in report.sections]
    return report
