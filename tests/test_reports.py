"""Reports CI can show: Markdown (and GitHub's step summary), HTML in a real browser, JUnit XML."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

RUN = """
import os, random, pytest

SCALE = float(os.environ.get("AXIOM_TEST_SCALE", "1"))

@pytest.mark.latency_budget(p95="30ms", p99="40ms")
def test_orders(axiom_tracker):
    rng = random.Random(5)
    for _ in range(100):
        axiom_tracker.record("api_response_times", rng.lognormvariate(-4.6, 0.2) * SCALE)

@pytest.mark.latency_budget(mean="1ms")
def test_over_budget(axiom_tracker):
    axiom_tracker.record("websocket_latency", 0.5)

def test_fine(axiom_tracker):
    import time
    for i in range(60):  # 1.6 s, with a stall before one slow order: seen over time
        axiom_tracker.record("order_execution_times", 0.2 if i == 40 else 0.004)
        time.sleep(0.4 if i == 39 else 0.02)
    for _ in range(30):
        axiom_tracker.record("http_dns_times", 0.0)  # all zero: folded away
"""

FINE = """
import pytest

@pytest.mark.latency_budget(p95="1s")
def test_fine(axiom_tracker):
    axiom_tracker.record("api_response_times", 0.01)
"""


@pytest.fixture
def compared(user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A saved baseline, then a 2x slower run writing every report."""
    user_project.makepyfile(test_rep=RUN)
    assert (
        user_project.runpytest(
            "--axiom-perf", "--axiom-perf-save=base.json", "--axiom-perf-sample-interval=0.1"
        ).ret
        == 1
    )
    monkeypatch.setenv("AXIOM_TEST_SCALE", "2")
    summary = user_project.path / "step_summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = user_project.runpytest(
        "--axiom-perf",
        "--axiom-perf-compare=base.json",
        "--axiom-perf-markdown=out/summary.md",
        "--axiom-perf-html=out/report.html",
        "--junitxml=out/junit.xml",
        "--axiom-perf-sample-interval=0.1",
    )
    result.assert_outcomes(passed=2, failed=1)
    return user_project


def test_markdown_opens_with_the_verdict_and_failures_first(compared: pytest.Pytester) -> None:
    text = (compared.path / "out" / "summary.md").read_text()
    assert text.startswith(
        "## pytest-axiomperf: FAIL (1 over budget, 1 regression, 0 not comparable)\n"
    )
    order = [
        "| verdict | test | budgets: measured vs bound | change vs baseline |",
        "| **FAIL** | `test_rep.py::test_over_budget` | "
        "websocket_latency mean 500.00ms &gt; 1.00ms |",
        "| **REGRESSED** | `test_rep.py::test_orders` | api_response_times p95 ",
        "| PASS | `test_rep.py::test_fine` | - | unchanged |",
        "### Baseline comparison",
        "| **regression** | `test_rep.py::test_orders` | api_response_times |",
        "### Metrics",
        "#### `test_rep.py::test_over_budget` FAIL",
        "#### `test_rep.py::test_orders` REGRESSED",
        "| api_response_times | 100 | ",
        "#### `test_rep.py::test_fine` PASS",
        "Not shown (no information): http_dns_times (n=30, all 0)",
    ]
    positions = [text.find(part) for part in order]
    assert -1 not in positions, [p for p, i in zip(order, positions, strict=True) if i == -1]
    assert positions == sorted(positions)
    # The same summary is appended to GitHub's step summary, after what was there.
    step = (compared.path / "step_summary.md").read_text()
    assert step == "# earlier step\n" + text + "\n"


def test_terminal_opens_with_the_verdict_and_failures_first(compared: pytest.Pytester) -> None:
    out = compared.runpytest("--axiom-perf", "--axiom-perf-compare=base.json").stdout
    out.fnmatch_lines(
        [
            "*= axiom-perf report =*",
            "FAIL: 1 over budget, 1 regression, 0 not comparable "
            "(3 tests, 2 with budgets; baseline base.json)",
            "  FAIL       test_rep.py::test_over_budget",
            "               budgets: websocket_latency mean 500.00ms > 1.00ms",
            "  REGRESSED  test_rep.py::test_orders",
            "               budgets: api_response_times p95 *ms <= 30.00ms; *",
            "               baseline: REGRESSION api_response_times p95 * -> * (+*%)",
            "  PASS       test_rep.py::test_fine",
            "               baseline: unchanged",
        ]
    )


def test_a_passing_run_says_pass_in_every_format(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_ok=FINE)
    result = user_project.runpytest(
        "--axiom-perf", "--axiom-perf-markdown=ok.md", "--axiom-perf-html=ok.html"
    )
    result.assert_outcomes(passed=1)
    verdict = "PASS: 0 over budget, 0 regressions, 0 not comparable (1 test, 1 with budgets)"
    result.stdout.fnmatch_lines(["*= axiom-perf report =*", verdict])
    md = (user_project.path / "ok.md").read_text()
    assert md.startswith("## pytest-axiomperf: PASS (0 over budget, 0 regressions, ")
    assert "change vs baseline" not in md  # no baseline: no empty column
    html = (user_project.path / "ok.html").read_text()
    assert (
        '<div id="verdict" class="verdict ok"><strong>PASS</strong>: 0 over budget, '
        "0 regressions, 0 not comparable</div>"
    ) in html
    assert '<details class="test" id="t0">' in html  # nothing to look at: folded


def test_junit_xml_has_percentiles(compared: pytest.Pytester) -> None:
    root = ET.parse(compared.path / "out" / "junit.xml").getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_orders")
    props = {p.get("name"): float(p.get("value") or "nan") for p in case.iter("property")}
    assert set(props) == {
        "axiomperf.api_response_times.p50",
        "axiomperf.api_response_times.p95",
        "axiomperf.api_response_times.p99",
    }
    p50, p95, p99 = (props[f"axiomperf.api_response_times.{p}"] for p in ("p50", "p95", "p99"))
    assert 0.015 < p50 <= p95 <= p99 < 0.05  # seconds, 2x the ~10 ms baseline


def test_html_is_self_contained_with_budgets_and_baseline(compared: pytest.Pytester) -> None:
    html = (compared.path / "out" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no external scripts, styles, images or fonts (links are in-page).
    assert not re.search(r"""(src|href)\s*=\s*"(?!#t\d+")|@import|url\(""", html)
    assert html.count('<svg class="plot"') == 3
    assert html.count('class="budget"') == 3  # p95 and p99 of orders, mean of the other
    assert 'stroke="#8b949e" stroke-width="2" stroke-dasharray="6 4"' in html  # baseline
    assert "p95 budget 30.00ms" in html
    assert "REGRESSION: api_response_times p95 " in html
    # The verdict, then the table: failures and regressions first, linked to their details.
    assert html.index('<div id="verdict" class="verdict fail"><strong>FAIL</strong>: ') < (
        html.index('<td class="v fail">FAIL</td><td><a href="#t2">test_rep.py::test_over_budget')
    )
    rows = [html.index(f'<a href="#t{i}">') for i in (2, 1, 0)]
    assert rows == sorted(rows)
    assert '<details class="test" id="t2" open>' in html  # needs attention: open
    assert '<details class="test" id="t0">' in html  # passed: folded
    # Over time: the slow test's windows, and its process's RSS/CPU over its 1.6 s body.
    assert html.count('<svg class="timeplot"') == 1
    assert html.count('<svg class="resplot"') == 1
    assert "Not shown (no information): http_dns_times (n=30, all 0)" in html
    assert "rendered" not in html and "axiomperf-status" not in html  # no debug text


def test_results_keep_the_time_series_and_older_files_still_load(
    compared: pytest.Pytester,
) -> None:
    from pytest_axiomperf.results import SessionResults

    result = compared.runpytest(
        "--axiom-perf", "--axiom-perf-json=r.json", "--axiom-perf-sample-interval=0.1"
    )
    result.assert_outcomes(passed=2, failed=1)
    data = json.loads((compared.path / "r.json").read_text())
    timeline = data["tests"]["test_rep.py::test_fine"]["tracker"]["timeline"]
    windows = next(
        s["windows"] for s in timeline["series"] if s["metric"] == "order_execution_times"
    )
    assert sum(w[1] for w in windows) == 60  # [start, n, p50, p99, max]
    assert len(windows) >= 3
    # The stall: a gap of at least one window, and the slow order in a window's max.
    starts = [w[0] for w in windows]
    assert any(b - a > timeline["width"] * 1.5 for a, b in itertools.pairwise(starts))
    assert max(w[4] for w in windows) == pytest.approx(0.2)
    assert len(timeline["resources"]) >= 5  # [t, cpu %, rss MB]
    read = SessionResults.from_dict(data).tests["test_rep.py::test_fine"].tracker
    assert sum(w.n for w in read.timeline.windows("order_execution_times")) == 60
    rss = read.timeline.rss_summary()
    assert rss is not None and rss["peak_mb"] >= rss["start_mb"] > 0
    # A file written before time series existed still loads (no "timeline" key).
    for test in data["tests"].values():
        del test["tracker"]["timeline"]
    old = SessionResults.from_dict(data).tests["test_rep.py::test_fine"].tracker
    assert old.timeline.windows("order_execution_times") == []
    assert old.stats("order_execution_times").count == 60


TAGGED = """
def test_routes(axiom_tracker):
    for i in range(20):
        axiom_tracker.record("api_response_times", 0.010, tag="GET /balance/{address}")
    for i in range(5):
        axiom_tracker.record("api_response_times", 0.050, tag="POST /orders")
    axiom_tracker.record_error("HTTP 5xx", 2)
    axiom_tracker.record_error(TimeoutError())
    axiom_tracker.add_table("Pool vs basic", ["client", "req/s"], [["pooled", 812.5], ["basic", 3]])
    for _ in range(3):  # a metric with one route: no row repeating the metric's
        axiom_tracker.record("order_execution_times", 0.02, tag="POST /orders<v2>")
"""


def test_markdown_and_html_show_routes_errors_and_tables(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_tags=TAGGED)
    result = user_project.runpytest(
        "--axiom-perf", "--axiom-perf-markdown=out.md", "--axiom-perf-html=out.html"
    )
    result.assert_outcomes(passed=1)
    text = (user_project.path / "out.md").read_text()
    rows = [
        "| api_response_times | 25 | ",
        "| &nbsp;&nbsp;↳ GET /balance/{address} | 20 | 10.00ms | ",
        "| &nbsp;&nbsp;↳ POST /orders | 5 | 50.00ms | ",
        "Errors: 3 errors: HTTP 5xx 2, TimeoutError 1",
    ]
    positions = [text.find(row) for row in rows]
    assert -1 not in positions, text
    assert positions == sorted(positions)
    # The test's row says it counted errors (no budget, no baseline: that column only).
    assert "| verdict | test | errors |\n|---|---|---|\n" in text
    assert "| PASS | `test_tags.py::test_routes` | 3 errors: HTTP 5xx 2, TimeoutError 1 |" in text
    assert "### Tables\n\n**Pool vs basic** (`test_tags.py::test_routes`)" in text
    assert "| client | req/s |\n|---|---|\n| pooled | 812.50 |\n| basic | 3 |" in text
    assert text.find("### Tables") < text.find("### Metrics")
    assert "| order_execution_times | 3 | " in text
    assert "POST /orders&lt;v2&gt;" not in text and "<v2>" not in text  # its only route
    html = (user_project.path / "out.html").read_text()
    assert '<td class="tag">&#8627; POST /orders</td><td>5</td><td>50.00ms</td>' in html
    assert '<p class="errors">Errors: 3 errors: HTTP 5xx 2, TimeoutError 1</p>' in html
    assert (
        "<table><caption>Pool vs basic</caption><tr><th>client</th><th>req/s</th></tr>"
        "<tr><td>pooled</td><td>812.50</td></tr><tr><td>basic</td><td>3</td></tr></table>"
    ) in html


# -- in a real browser ------------------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes): width, height, pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            upleft = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else upleft)
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(tuple(line[i : i + 3]) for i in range(0, stride, channels))
        prev = line
    return width, height, pixels


def _run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_html_renders_in_headless_chromium(compared: pytest.Pytester, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    url = (compared.path / "out" / "report.html").as_uri()
    dom = _run_chromium(browser, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The verdict banner comes first; the plots, over percentiles and over time, are in
    # the DOM; no debug footer.
    assert '<div id="verdict" class="verdict fail"><strong>FAIL</strong>: 1 over budget, ' in (
        dom.stdout
    )
    assert dom.stdout.count('<svg class="plot"') == 3
    assert dom.stdout.count('<svg class="timeplot"') == 1
    assert "rendered" not in dom.stdout and "axiomperf-status" not in dom.stdout
    # The first screen at 1400x900: the red verdict banner and the failing tests' curves.
    first = tmp_path / "first.png"
    done = _run_chromium(
        browser, tmp_path / "profile-shot", "--window-size=1400,900", f"--screenshot={first}", url
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Following the passed test's link opens its folded details: its plot over time.
    linked = tmp_path / "linked.png"
    shown = _run_chromium(
        browser,
        tmp_path / "profile-link",
        "--window-size=1400,1800",
        f"--screenshot={linked}",
        url + "#t0",
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for output in (dom.stderr, done.stderr, shown.stderr):
        console = [line for line in output.splitlines() if ":CONSOLE(" in line]
        assert not console, console  # no console messages, let alone errors
    width, height, pixels = _png_pixels(first.read_bytes())
    assert (width, height) == (1400, 900)
    colours = set(pixels)
    assert len(colours) > 20, "the screenshot is (nearly) blank"
    assert (0xD1, 0x24, 0x2F) in set(pixels[: width * 150]), "no red verdict banner on top"
    assert (0x1F, 0x6F, 0xEB) in colours, "the current run's curve was not drawn"
    assert (0x8B, 0x94, 0x9E) in colours, "the baseline's curve was not drawn"
    linked_colours = set(_png_pixels(linked.read_bytes())[2])
    assert (0x54, 0xAE, 0xFF) in linked_colours, "the p50 over time was not drawn"
    assert (0x82, 0x50, 0xDF) in linked_colours, "the RSS over time was not drawn"


def test_markdown_cells_carry_no_markup() -> None:
    from pytest_axiomperf.report.markdown import _cell, _code

    assert _cell("GET /a|<script>&\nx") == "GET /a\\|&lt;script&gt;&amp; x"
    # A code span shows its text as written: escaping it would print "&lt;".
    assert _code("t.py::test_x[a<b|c&d]") == "`t.py::test_x[a<b\\|c&d]`"


def test_rounds_merge_into_one_row_and_the_time_series_says_whose(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        test_r="""
        import time

        def test_slowish(axiom_tracker):
            for _ in range(25):
                axiom_tracker.record("api_response_times", 0.005)
                time.sleep(0.03)
        """
    )
    result = user_project.runpytest(
        "--axiom-perf",
        "--axiom-perf-rounds=2",
        "--axiom-perf-sample-interval=0.1",
        "--axiom-perf-markdown=r.md",
        "--axiom-perf-html=r.html",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["PASS: 0 over budget, 0 regressions, 0 not comparable (1 test, 0 with budgets)"]
    )
    md = (user_project.path / "r.md").read_text()
    # Nothing to say beyond the verdict: the table has no empty columns.
    assert "| verdict | test |\n|---|---|\n| PASS | `test_r.py::test_slowish` |\n" in md
    html = (user_project.path / "r.html").read_text()
    assert "over time (one round of 2)" in html
    assert "api_response_times</b> (n=50)" in html
