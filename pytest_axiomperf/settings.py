"""Options, resolved once per run: command line > ini file > environment > default."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from pytest_axiomperf.errors import ConfigError
from pytest_axiomperf.redact import Secret, redact_text, remember, remember_url, safe_url

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(text: str) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_percent(text: str) -> float:
    """A non-negative percentage: ``10``, ``7.5`` or ``10%``."""
    value = float(text.strip().removesuffix("%"))
    if not value >= 0.0:
        raise ValueError(f"expected a percentage >= 0, got {text!r}")
    return value


def parse_positive(text: str) -> float:
    """A number > 0."""
    value = float(text)
    if not value > 0.0:
        raise ValueError(f"expected a number > 0, got {text!r}")
    return value


def parse_non_negative(text: str) -> float:
    """A number >= 0."""
    value = float(text)
    if not value >= 0.0:
        raise ValueError(f"expected a number >= 0, got {text!r}")
    return value


#: The most rounds (or passes) a run takes.
MAX_COUNT = 1000


def parse_rounds(text: str) -> int:
    """A whole number of rounds, 1 to 1000."""
    return _parse_count(text, "rounds")


def parse_passes(text: str) -> int:
    """A whole number of passes, 1 to 1000."""
    return _parse_count(text, "passes")


def _parse_count(text: str, noun: str) -> int:
    expected = f"expected a whole number of {noun} from 1 to {MAX_COUNT}, got {text!r}"
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(expected) from None
    if not 1 <= value <= MAX_COUNT:
        raise ValueError(expected)
    return value


def parse_url(text: str, schemes: tuple[str, ...] = ("http", "https", "ws", "wss")) -> str:
    """A URL with one of ``schemes`` and a host part, without a trailing slash."""
    text = text.strip()
    shown = redact_text(text)  # the error names the option; a password it need not show
    scheme, sep, rest = text.partition("://")
    example = f"{schemes[0]}://127.0.0.1:8080"
    if not sep or not rest:
        raise ValueError(f"expected a URL such as {example}, got {shown!r}")
    if scheme.lower() not in schemes:
        # A typo such as htp:// would otherwise pass here and fail every request later,
        # far from the option that caused it.
        raise ValueError(
            f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}, "
            f"such as {example}, got {shown!r}"
        )
    return text.rstrip("/")


def parse_http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL, without a trailing slash."""
    return parse_url(text, ("http", "https"))


def parse_ws_url(text: str) -> str:
    """A ``ws://`` or ``wss://`` URL, without a trailing slash."""
    return parse_url(text, ("ws", "wss"))


def parse_choice(*choices: str) -> Callable[[str], str]:
    """A parser accepting one of ``choices``."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return value

    return parse


@dataclass(frozen=True)
class Option:
    """One setting: where it is read from and how it is parsed."""

    name: str  # dataclass field of Settings
    flag: str | None  # command-line flag
    ini: str | None  # ini key
    env: str | None  # environment variable
    parse: Callable[[str], Any]
    default: Any
    help: str
    metavar: str | None = None
    is_flag: bool = False  # a command-line switch without a value


OPTIONS: tuple[Option, ...] = (
    Option(
        "perf",
        "--axiom-perf",
        "axiom_perf",
        None,
        parse_bool,
        False,
        "performance mode: enforce budgets, sample CPU/memory, print the report",
        is_flag=True,
    ),
    Option(
        "json_path",
        "--axiom-perf-json",
        "axiom_perf_json",
        None,
        Path,
        None,
        "write the run's results as JSON (atomically)",
        "PATH",
    ),
    Option(
        "save_path",
        "--axiom-perf-save",
        None,
        None,
        Path,
        None,
        "save the run's results as a baseline file",
        "PATH",
    ),
    Option(
        "compare_path",
        "--axiom-perf-compare",
        "axiom_perf_compare",
        None,
        Path,
        None,
        "compare with a baseline; a significant regression fails the run",
        "PATH",
    ),
    Option(
        "threshold",
        "--axiom-perf-threshold",
        "axiom_perf_threshold",
        None,
        parse_percent,
        10.0,
        "smallest p95 regression, in percent of the baseline, that can fail the run (default 10)",
        "PCT",
    ),
    Option(
        "noise_floor",
        "--axiom-perf-noise-floor",
        "axiom_perf_noise_floor",
        None,
        parse_non_negative,
        0.0,
        "smallest absolute p95 regression, in milliseconds, that can fail the run "
        "(default 0: none; the threshold is relative)",
        "MS",
    ),
    Option(
        "rounds",
        "--axiom-perf-rounds",
        "axiom_perf_rounds",
        None,
        parse_rounds,
        1,
        "measure each performance test in N rounds spread over the run; the gate then "
        "compares rounds, not one run's samples (default 1)",
        "N",
    ),
    Option(
        "mismatch",
        "--axiom-perf-mismatch",
        "axiom_perf_mismatch",
        None,
        parse_choice("warn", "refuse"),
        "warn",
        "when the baseline's environment or latency profile differs: warn (default) "
        "or refuse to compare",
        "warn|refuse",
    ),
    Option(
        "markdown_path",
        "--axiom-perf-markdown",
        "axiom_perf_markdown",
        None,
        Path,
        None,
        "write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set)",
        "PATH",
    ),
    Option(
        "html_path",
        "--axiom-perf-html",
        "axiom_perf_html",
        None,
        Path,
        None,
        "write a self-contained HTML report with latency plots",
        "PATH",
    ),
    Option(
        "profile_dir",
        "--axiom-perf-profile",
        "axiom_perf_profile",
        None,
        Path,
        None,
        "cProfile each budgeted test into DIR/*.prof",
        "DIR",
    ),
    Option(
        "sample_interval",
        "--axiom-perf-sample-interval",
        "axiom_perf_sample_interval",
        None,
        parse_positive,
        0.5,
        "seconds between CPU/memory samples in performance mode (default 0.5)",
        "S",
    ),
    Option(
        "base_url",
        "--axiom-base-url",
        "axiom_base_url",
        "AXIOM_BASE_URL",
        parse_http_url,
        None,
        "REST API under test (default: the embedded exchange)",
        "URL",
    ),
    Option(
        "ws_url",
        "--axiom-ws-url",
        "axiom_ws_url",
        "AXIOM_WS_URL",
        parse_ws_url,
        None,
        "WebSocket API under test (default: the embedded exchange)",
        "URL",
    ),
)


#: Options that ask for a performance run's output, and so turn performance mode on.
OUTPUT_OPTIONS = (
    "json_path",
    "save_path",
    "compare_path",
    "markdown_path",
    "html_path",
    "profile_dir",
)

#: Settings holding a URL, which may carry credentials.
_URL_FIELDS = ("base_url", "ws_url")


@dataclass(frozen=True)
class Settings:
    """Every option's resolved value, and where each came from."""

    perf: bool = False
    json_path: Path | None = None
    save_path: Path | None = None
    compare_path: Path | None = None
    threshold: float = 10.0
    noise_floor: float = 0.0
    rounds: int = 1
    mismatch: str = "warn"
    markdown_path: Path | None = None
    html_path: Path | None = None
    profile_dir: Path | None = None
    sample_interval: float = 0.5
    base_url: str | None = None
    ws_url: str | None = None
    #: Bearer token from ``AXIOM_AUTH_TOKEN``; never shown (excluded from repr).
    auth_token: str | None = None
    #: ``{field: "command line" | "ini" | "environment" | "default"}``.
    sources: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={self.shown(f.name)!r}"
            for f in fields(self)
            if f.name not in ("auth_token", "sources")
        )
        token = "<set>" if self.auth_token else None
        return f"Settings({shown}, auth_token={token})"

    def shown(self, name: str) -> Any:
        """The value of ``name`` as it may be printed: URLs without credentials or query."""
        value = getattr(self, name)
        return safe_url(value) if name in _URL_FIELDS and value is not None else value

    def source(self, name: str) -> str:
        """Where the value of ``name`` came from."""
        return dict(self.sources).get(name, "default")

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Resolve every option; ``ConfigError`` names the option and where its bad value was."""
        values: dict[str, Any] = {}
        sources: list[tuple[str, str]] = []
        for opt in OPTIONS:
            raw, origin, where = _raw_value(config, opt)
            if raw is None:
                values[opt.name] = opt.default
                continue
            if isinstance(raw, str):
                try:
                    values[opt.name] = opt.parse(raw)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            else:
                values[opt.name] = raw
            sources.append((opt.name, origin))
        token = os.environ.get("AXIOM_AUTH_TOKEN") or None
        _refuse_shared_paths(values)
        given = dict(sources)
        if not values["perf"] and any(given.get(n) == "command line" for n in OUTPUT_OPTIONS):
            # Asking for a baseline, a comparison or a report on the command line is asking
            # for performance mode: a CI job that forgot --axiom-perf must not gate nothing
            # and exit 0. (An ini key only says where to write when performance mode is on.)
            values["perf"] = True
            sources.append(("perf", "implied by an output option"))
        # Every filtered log record hides these; a Secret hides itself in tracebacks.
        remember(token)
        for name in _URL_FIELDS:
            remember_url(values[name])
        auth_token = Secret(token) if token else None
        return cls(**values, auth_token=auth_token, sources=tuple(sources))


def _refuse_shared_paths(values: dict[str, Any]) -> None:
    """Two outputs of one run naming one file would overwrite each other (the HTML report
    over the baseline it compared against): refused before anything runs. Saving over the
    baseline compared against is allowed (it is kept when the run regressed)."""
    flags = {opt.name: opt.flag for opt in OPTIONS}
    seen: dict[str, str] = {}
    for name in ("compare_path", "save_path", "json_path", "markdown_path", "html_path"):
        path = values.get(name)
        if path is None:
            continue
        key = os.path.realpath(path)
        other = seen.get(key)
        if other is not None and {other, name} != {"compare_path", "save_path"}:
            raise ConfigError(
                f"{flags[other]} and {flags[name]} name the same file {path}: one would "
                "overwrite the other"
            )
        seen.setdefault(key, name)


def _raw_value(config: pytest.Config, opt: Option) -> tuple[Any, str, str]:
    """The first value given for ``opt``: ``(value, source, description for errors)``."""
    if opt.flag is not None:
        cli = config.getoption(_dest(opt.flag), default=None)
        if cli is not None:
            return cli, "command line", f"{opt.flag}"
    if opt.ini is not None:
        ini = config.getini(opt.ini)
        if isinstance(ini, str) and ini.strip():
            return ini, "ini", f"ini key {opt.ini} (in {config.inipath or 'the ini file'})"
    if opt.env is not None:
        env = os.environ.get(opt.env)
        if env:
            return env, "environment", f"environment variable {opt.env}"
    return None, "default", ""


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_options(parser: pytest.Parser) -> None:
    """Register every command-line flag and ini key (CLI defaults are ``None``)."""
    group = parser.getgroup("axiomperf", "performance testing (pytest-axiomperf)")
    for opt in OPTIONS:
        if opt.flag is not None:
            suffix = []
            if opt.ini:
                suffix.append(f"ini: {opt.ini}")
            if opt.env:
                suffix.append(f"env: {opt.env}")
            help_text = opt.help + (f" [{'; '.join(suffix)}]" if suffix else "")
            if opt.is_flag:
                group.addoption(
                    opt.flag,
                    action="store_const",
                    const=True,
                    default=None,
                    dest=_dest(opt.flag),
                    help=help_text,
                )
            else:
                group.addoption(
                    opt.flag,
                    action="store",
                    default=None,
                    dest=_dest(opt.flag),
                    metavar=opt.metavar,
                    help=help_text,
                )
        if opt.ini is not None:
            parser.addini(opt.ini, help=opt.help, type="string", default="")
