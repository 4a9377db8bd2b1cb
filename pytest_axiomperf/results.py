"""A run's results: per-test records, session totals, environment; JSON in and out."""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_axiomperf.budgets import Verdict
from pytest_axiomperf.roundstats import validate_rounds
from pytest_axiomperf.tracker import PerformanceTracker

#: Version of the results / baseline file format.
FORMAT_VERSION = 1


@dataclass
class TestResult:
    """What one test measured and how its budgets fared."""

    nodeid: str
    tracker: PerformanceTracker
    verdicts: list[Verdict] = field(default_factory=list)
    budgets: list[str] = field(default_factory=list)
    outcome: str = "passed"
    duration: float = 0.0
    #: Further per-test facts from other parts of the plugin (memory, load runs).
    extra: dict[str, Any] = field(default_factory=dict)
    #: One summary per round the test was measured in (``roundstats.round_summary``), in
    #: round order; ``tracker`` holds all rounds' samples merged.
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed_budgets(self) -> bool:
        """True when every verdict passed (or there were none)."""
        return all(v.passed for v in self.verdicts)

    @property
    def round_indexes(self) -> list[int]:
        """The rounds this result holds."""
        return [int(r["round"]) for r in self.rounds]

    def merge_round(self, other: TestResult) -> None:
        """Fold another round of the same test into this result.

        Samples merge exactly (histograms); round summaries are kept side by side; the
        time series stays this result's round's (a timeline is one tracker's clock). The
        verdicts are those of the later round, which (in one process) were checked against
        the samples of every round before it too; a failed round fails the test.
        """
        self.tracker.merge(other.tracker)
        later = max(other.round_indexes, default=0) >= max(self.round_indexes, default=0)
        if later:
            self.verdicts = list(other.verdicts)
            self.budgets = list(other.budgets)
        if other.outcome == "failed" or (later and self.outcome != "failed"):
            self.outcome = other.outcome
        self.duration += other.duration
        for key, value in other.extra.items():
            mine = self.extra.get(key)
            if isinstance(mine, list) and isinstance(value, list):
                mine.extend(value)
            elif later or key not in self.extra:
                self.extra[key] = value
        self.rounds = sorted([*self.rounds, *other.rounds], key=lambda r: int(r["round"]))

    @property
    def flags(self) -> set[str]:
        """Notes on how the numbers were obtained (e.g. ``"tracemalloc"``)."""
        return self.tracker.flags

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: per metric count/mean/percentiles and the histogram; verdicts."""
        metrics: dict[str, Any] = {}
        for metric in self.tracker.metrics():
            entry = self.tracker.stats(metric).to_dict()
            entry["histogram"] = self.tracker.histogram(metric).to_dict()
            entry["tags"] = {
                tag: self.tracker.stats(metric, tag).to_dict() for tag in self.tracker.tags(metric)
            }
            metrics[metric] = entry
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration": self.duration,
            "budgets": [v.to_dict() for v in self.verdicts],
            "budget_marks": list(self.budgets),
            "metrics": metrics,
            "errors": self.tracker.errors,
            "flags": sorted(self.flags),
            "extra": self.extra,
            "tracker": self.tracker.to_dict(),
            "rounds": self.rounds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestResult:
        """Rebuild from :meth:`to_dict` (the ``tracker`` entry holds the lossless data)."""
        return cls(
            nodeid=str(data["nodeid"]),
            tracker=PerformanceTracker.from_dict(data["tracker"]),
            verdicts=[Verdict.from_dict(v) for v in data.get("budgets", [])],
            budgets=[str(b) for b in data.get("budget_marks", [])],
            outcome=str(data.get("outcome", "passed")),
            duration=float(data.get("duration", 0.0)),
            extra=dict(data.get("extra", {})),
            rounds=validate_rounds(data.get("rounds", [])),
        )


def environment() -> dict[str, Any]:
    """Where the numbers were measured: Python, platform, CPU model and count, plugin version."""
    from pytest_axiomperf import __version__

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "plugin_version": __version__,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class SessionResults:
    """Every test's result, the session's resource samples, and run facts."""

    tests: dict[str, TestResult] = field(default_factory=dict)
    resources: PerformanceTracker = field(default_factory=lambda: PerformanceTracker("session"))
    environment: dict[str, Any] = field(default_factory=environment)
    exchange_profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: The comparison with a baseline (``baseline.Comparison.to_dict()``), when one was made.
    comparison: dict[str, Any] | None = None
    #: pytest-xdist workers whose processes ``resources`` adds up (0: this process alone).
    workers: int = 0

    def add(self, result: TestResult) -> None:
        """Add one test's result: another round of a test already here merges into it; the
        same round again (a rerun) replaces it."""
        held = self.tests.get(result.nodeid)
        if (
            held is not None
            and held.rounds
            and result.rounds
            and not set(held.round_indexes) & set(result.round_indexes)
        ):
            held.merge_round(result)
            return
        self.tests[result.nodeid] = result

    def totals(self) -> PerformanceTracker:
        """One tracker merging the tests' metrics and the resource samples.

        Expected failures (xfailed tests, e.g. an example showing a budget catch
        a deliberately bad variant) are left out: they describe what the code
        under test should not do. Their numbers stay in their own results.
        """
        total = PerformanceTracker("session")
        for result in self.tests.values():
            if result.outcome != "xfailed":
                total.merge(result.tracker)
        total.merge(self.resources)
        total._runtime = self.resources.runtime
        return total

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written by ``--axiom-perf-json`` and ``--axiom-perf-save``."""
        totals = self.totals()
        return {
            "format_version": FORMAT_VERSION,
            "tool": "pytest-axiomperf",
            "environment": self.environment,
            "exchange_profile": self.exchange_profile,
            "session": totals.get_statistics(),
            "resources": self.resources.to_dict(),
            "notes": list(self.notes),
            "comparison": self.comparison,
            "workers": self.workers,
            "tests": {nodeid: r.to_dict() for nodeid, r in sorted(self.tests.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionResults:
        """Rebuild from :meth:`to_dict`; ``ValueError``/``KeyError`` when malformed."""
        if data.get("tool") != "pytest-axiomperf":
            raise ValueError("not a pytest-axiomperf results file")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"format version {version!r}, this plugin reads {FORMAT_VERSION}")
        return cls(
            tests={k: TestResult.from_dict(v) for k, v in dict(data["tests"]).items()},
            resources=PerformanceTracker.from_dict(data["resources"]),
            environment=dict(data.get("environment", {})),
            exchange_profile=data.get("exchange_profile"),
            notes=list(data.get("notes", [])),
            comparison=data.get("comparison"),
            workers=int(data.get("workers") or 0),
        )


def _json_default(value: object) -> object:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def results_json(data: Mapping[str, Any]) -> str:
    """``data`` as the JSON text of a results file (NaN and infinities as null)."""
    return json.dumps(_clean(data), indent=1, sort_keys=True, default=_json_default) + "\n"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: readers see the old or the new file, never half.

    A symlink at ``path`` is written through (its target is replaced, the link stays);
    anything else that is not a regular file (a directory, a device, a pipe) is refused
    with ``OSError``, never replaced.
    """
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes, *, follow_symlinks: bool = True) -> None:
    """:func:`write_text_atomic` for bytes; ``follow_symlinks=False`` replaces a symlink
    at ``path`` by the file instead of writing to its target."""
    path = Path(os.path.realpath(path) if follow_symlinks else path)
    try:
        mode = path.stat(follow_symlinks=follow_symlinks).st_mode
    except FileNotFoundError:
        pass
    else:
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            what = "a directory" if stat.S_ISDIR(mode) else "a device, pipe or socket"
            raise OSError(errno.EEXIST, f"{what}: refusing to replace it", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode any new file gets here,
        # so a CI artifact upload or a web server running as another user can read it.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
