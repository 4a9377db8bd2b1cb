"""The ``axiomperf`` command: compare and show, and their exit codes."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_axiomperf.baseline import save_results
from pytest_axiomperf.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_REGRESSION, main
from pytest_axiomperf.results import SessionResults
from pytest_axiomperf.results import TestResult as PerfResult
from pytest_axiomperf.tracker import PerformanceTracker


def _write(path: Path, scale: float, n: int = 200) -> Path:
    results = SessionResults()
    tracker = PerformanceTracker("test_x.py::test_orders")
    rng = random.Random(1)
    for _ in range(n):
        tracker.record("api_response_times", rng.lognormvariate(-4, 0.25) * scale)
    results.add(PerfResult(nodeid="test_x.py::test_orders", tracker=tracker))
    save_results(path, results)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "old": _write(tmp_path / "old.json", 1.0),
        "same": _write(tmp_path / "same.json", 1.0),
        "slow": _write(tmp_path / "slow.json", 1.3),
    }


def test_compare_same_exits_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(files["old"]), str(files["same"])]) == EXIT_OK
    out = capsys.readouterr().out
    assert "  unchanged         test_x.py::test_orders  api_response_times p95 " in out
    assert "Result: 0 regression(s), 0 improved, 1 unchanged" in out


def test_compare_regression_exits_1(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(files["old"]), str(files["slow"])]) == EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "  REGRESSION        test_x.py::test_orders  api_response_times p95 " in out
    assert re.search(r"\(\+(29|30|31)\.\d%\)", out), out  # the 1.3x shift, within bucket error
    # The same shift under a 50 % threshold, or a 100 ms noise floor, passes.
    assert main(["compare", str(files["old"]), str(files["slow"]), "--threshold=50"]) == EXIT_OK
    noise = ["--noise-floor", "100"]
    assert main(["compare", str(files["old"]), str(files["slow"]), *noise]) == EXIT_OK
    # Reversed, it is an improvement: exit 0.
    assert main(["compare", str(files["slow"]), str(files["old"])]) == EXIT_OK
    assert "  improved " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{oops", "corrupt, not valid JSON"),
        ('{"tool": "pytest-axiomperf", "format_version": 7}', "format version 7"),
    ],
)
def test_bad_file_exits_2(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert main(["compare", str(bad), str(files["same"])]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"axiomperf: error: baseline {bad}: " in err and message in err
    assert main(["compare", str(files["old"]), str(bad)]) == EXIT_BAD_INPUT
    assert main(["show", str(bad)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count(f"axiomperf: error: results {bad}: ") == 2 and message in err
    assert "Traceback" not in err


def test_bad_arguments_exit_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(files["old"])]) == EXIT_BAD_INPUT
    code = main(["compare", str(files["old"]), str(files["same"]), "--threshold=-5"])
    assert code == EXIT_BAD_INPUT
    assert "expected a percentage >= 0" in capsys.readouterr().err


def test_mismatch_refuse_exits_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(files["same"].read_text())
    data["environment"]["cpu_count"] = 999
    files["same"].write_text(json.dumps(data))
    assert main(["compare", str(files["old"]), str(files["same"])]) == EXIT_OK
    assert "  WARNING: environment cpu_count: baseline " in capsys.readouterr().out
    refuse = ["--mismatch", "refuse"]
    assert main(["compare", str(files["old"]), str(files["same"]), *refuse]) == EXIT_BAD_INPUT
    assert "  REFUSED: environment cpu_count" in capsys.readouterr().out


def test_show_prints_the_report(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(files["old"])]) == EXIT_OK
    out = capsys.readouterr().out
    assert "=== AxiomTrade Performance Report ===" in out
    assert "API Response Times (n=200):" in out


def test_console_script_in_a_real_process(files: dict[str, Path]) -> None:
    # The installed entry point: exit code and output as a pipeline sees them.
    script = Path(sys.executable).with_name("axiomperf")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pytest_axiomperf.cli"]
    done = subprocess.run(
        [*command, "compare", str(files["old"]), str(files["slow"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_REGRESSION, done.stderr
    assert "REGRESSION" in done.stdout
