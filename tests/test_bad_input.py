"""Hostile input gets a clear message and the documented exit code, never a traceback.

Results files (a baseline given to ``--axiom-perf-compare``, ``axiomperf show/compare``),
names that reach the terminal, Markdown, and budget marks that cannot mean anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_axiomperf import PerformanceTracker, baseline
from pytest_axiomperf.baseline import load_results, save_results
from pytest_axiomperf.cli import EXIT_BAD_INPUT, EXIT_OK, main
from pytest_axiomperf.errors import BaselineError
from pytest_axiomperf.report.markdown import _code
from pytest_axiomperf.report.text import fmt, printable, table_cell
from pytest_axiomperf.results import SessionResults
from pytest_axiomperf.results import TestResult as PerfResult

NODEID = "test_x.py::test_orders"


def _good(path: Path, tests: int = 1) -> Path:
    results = SessionResults()
    for i in range(tests):
        tracker = PerformanceTracker(NODEID)
        for k in range(30):
            tracker.record("api_response_times", 0.001 * (1 + k % 7), tag="GET /a")
        tracker.add_table("side by side", ["client", "p95"], [["ours", 0.5]])
        results.add(PerfResult(nodeid=f"{NODEID}{i or ''}", tracker=tracker))
    save_results(path, results)
    return path


def _histogram(data: dict[str, Any]) -> dict[str, Any]:
    histogram: dict[str, Any] = data["tests"][NODEID]["tracker"]["series"][0]["histogram"]
    return histogram


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        _histogram(data)[key] = value

    return edit


def _no_columns(data: dict[str, Any]) -> None:
    del data["tests"][NODEID]["tracker"]["tables"][0]["columns"]


def _list_tag(data: dict[str, Any]) -> None:
    data["tests"][NODEID]["tracker"]["series"][0]["tag"] = ["GET /a"]


#: (edit of a good file's JSON, or a text transform; what the message says)
HOSTILE: list[tuple[str, Callable[[dict[str, Any]], None] | None, Callable[[str], str], str]] = [
    ("huge int", None, lambda t: t.replace('"count": 30', '"count": ' + "9" * 5000, 1), "digits"),
    ("deep nesting", None, lambda t: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("NaN literal", None, lambda t: t.replace('"m2": ', '"m2": NaN, "x": ', 1), "NaN"),
    ("1e999", _set("m2", "INF"), lambda t: t.replace('"INF"', "1e999"), "m2 inf must be finite"),
    ("negative min", _set("min", -1.0), str, "min -1.0 must be finite and >= 0"),
    ("max below min", _set("max", 0.0), str, "out of order"),
    ("text count", _set("count", "30"), str, "count '30' is not a whole number"),
    ("key out of range", _set("buckets", [[0x8001, 30]]), str, "bucket key is out of range"),
    ("table without columns", _no_columns, str, "columns"),
    ("tag not text", _list_tag, str, "is not a string"),
]


def _hostile(path: Path, edit: Callable[[dict[str, Any]], None] | None, text: Any) -> Path:
    _good(path)
    data = json.loads(path.read_text())
    if edit is not None:
        edit(data)
    path.write_text(text(json.dumps(data, indent=1)))
    return path


@pytest.mark.parametrize(("case", "edit", "text", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_results_files_are_refused_by_name(
    tmp_path: Path, case: str, edit: Any, text: Any, message: str
) -> None:
    path = _hostile(tmp_path / "base.json", edit, text)
    with pytest.raises(BaselineError, match=message) as info:
        load_results(path)
    assert str(info.value).startswith(f"baseline {path}: ")


@pytest.mark.parametrize(("case", "edit", "text", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_axiomperf_exits_2_on_hostile_files_never_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    edit: Any,
    text: Any,
    message: str,
) -> None:
    bad = _hostile(tmp_path / "bad.json", edit, text)
    good = _good(tmp_path / "good.json")
    assert main(["show", str(bad)]) == EXIT_BAD_INPUT
    assert main(["compare", str(good), str(bad)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count(f"axiomperf: error: results {bad}: ") == 2
    assert "Traceback" not in err


def test_a_file_the_checks_let_through_but_the_report_cannot_show_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _good(tmp_path / "r.json")
    data = json.loads(path.read_text())
    data["tests"][NODEID]["extra"]["memory"] = {"growth_mb": "lots"}
    path.write_text(json.dumps(data))
    assert main(["show", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"axiomperf: error: cannot read {path}: ") and "Traceback" not in err


@pytest.mark.parametrize("case", ["huge int", "deep nesting"])
def test_a_hostile_baseline_is_a_usage_error_not_an_internal_error(
    user_project: pytest.Pytester, case: str
) -> None:
    hostile = next(h for h in HOSTILE if h[0] == case)
    _hostile(user_project.path / "base.json", hostile[1], hostile[2])
    user_project.makepyfile("def test_x(axiom_tracker):\n    pass\n")
    result = user_project.runpytest("--axiom-perf", "--axiom-perf-compare=base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-axiomperf: baseline base.json: *{hostile[3]}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_files_over_the_size_cap_or_not_regular_are_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _good(tmp_path / "big.json")
    results = load_results(path)
    monkeypatch.setattr(baseline, "MAX_FILE_BYTES", path.stat().st_size - 1)
    with pytest.raises(BaselineError, match=r"big\.json: larger than 0 MiB, the most"):
        load_results(path)
    # Nor is one written that the cap would refuse (a cap well under the file's size: a
    # re-saved file's length varies by a few digits, e.g. its runtime).
    monkeypatch.setattr(baseline, "MAX_FILE_BYTES", path.stat().st_size // 2)
    with pytest.raises(BaselineError, match="not written, it would not read back: larger"):
        save_results(tmp_path / "again.json", results)
    assert not (tmp_path / "again.json").exists()
    monkeypatch.undo()
    os.mkfifo(tmp_path / "fifo")  # reading it would wait forever for a writer
    with pytest.raises(BaselineError, match="fifo: not a regular file"):
        load_results(tmp_path / "fifo")


def test_show_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    path = _good(tmp_path / "r.json", tests=50)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already gone: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_axiomperf.cli", "show", str(path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == EXIT_OK


# -- what reaches the terminal and Markdown -------------------------------------------------

ESCAPES = """
import pytest

@pytest.mark.latency_budget(p95="1ms", tag="GET /\\x1b[2Jwipe")
def test_escapes(axiom_tracker):
    axiom_tracker.record("api_response_times", 0.5, tag="GET /\\x1b[2Jwipe")
    axiom_tracker.record_error("Evil\\x1b[31mError")
    axiom_tracker.add_table("t\\x1b[5m", ["c\\x07"], [["\\x9b31m"]])
"""


def test_control_characters_never_reach_the_terminal(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_esc=ESCAPES)
    result = user_project.runpytest("--axiom-perf", "-v")  # -v: the guide's report too
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in out
    assert "GET /\\x1b[2Jwipe" in out and "Evil\\x1b[31mError: 1" in out and "\\x9b31m" in out
    assert "  latency budget: api_response_times[GET /\\x1b[2Jwipe] p95 = 500.00ms > " in out


def test_printable_escapes_control_characters_only() -> None:
    assert printable("a\x1b[1mb\tc\nd\x7f\x85é") == "a\\x1b[1mb\tc\nd\\x7f\\x85é"


def test_markdown_code_spans_keep_backticks() -> None:
    assert _code("t.py::t[a`b]") == "``t.py::t[a`b]``"
    assert _code("t.py::t[``]") == "```t.py::t[``]```"
    assert _code("`x`") == "`` `x` ``"


def test_large_numbers_print_short() -> None:
    assert fmt(1e308) == "1.00e+308s"
    assert fmt(3e38, "B/s") == "3.00e+38 B/s"
    assert fmt(123456.789, "B/s") == "123456.79 B/s"
    assert table_cell(1e300) == "1.00e+300"


# -- latency budgets on what is not a latency ----------------------------------------------


def test_a_latency_budget_on_a_non_latency_metric_is_a_collection_error(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        "import pytest\n\n"
        "@pytest.mark.latency_budget(p95=0.15, metric='network_throughput')\n"
        "def test_x(axiom_tracker):\n    pass\n"
    )
    result = user_project.runpytest("--axiom-perf")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection error
    result.stdout.fnmatch_lines(
        [
            "*test_a_latency_budget_on_a_non_latency_metric_is_a_collection_error.py::test_x: "
            "@pytest.mark.latency_budget: metric='network_throughput' is measured in B/s, "
            "not seconds: a latency budget cannot bound it"
        ]
    )


def test_a_latency_budget_on_a_metric_declared_in_another_unit_fails_clearly(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        "import pytest\n\n"
        "@pytest.mark.latency_budget(p95=0.15, metric='fills')\n"
        "def test_x(axiom_tracker):\n"
        "    axiom_tracker.set_unit('fills', 'count')\n"
        "    axiom_tracker.record('fills', 12)\n"
    )
    result = user_project.runpytest("--axiom-perf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  latency budget: fills is measured in count, not seconds: a latency budget "
            "cannot bound it (give metric= a latency metric)"
        ]
    )
    assert "> 150.00ms" not in result.stdout.str()


def test_show_reads_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(_good(tmp_path / "r.json"))]) == EXIT_OK
    assert "side by side" in capsys.readouterr().out


def test_a_metric_name_with_control_characters_keeps_junit_xml_valid(
    user_project: pytest.Pytester,
) -> None:
    import xml.etree.ElementTree as ET

    user_project.makepyfile(
        "def test_esc(axiom_tracker):\n    axiom_tracker.record('m\\x1b[31mRED', 0.5)\n"
    )
    result = user_project.runpytest("--axiom-perf", "--junitxml=esc.xml")
    result.assert_outcomes(passed=1)
    root = ET.parse(user_project.path / "esc.xml").getroot()  # well-formed
    names = {p.get("name") for p in root.iter("property")}
    assert "axiomperf.m\\x1b[31mRED.p95" in names
