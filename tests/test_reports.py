"""Reports CI can show: Markdown (and GitHub's step summary), HTML in a real browser, JUnit XML."""

from __future__ import annotations

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
"""


@pytest.fixture
def compared(user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A saved baseline, then a 2x slower run writing every report."""
    user_project.makepyfile(test_rep=RUN)
    assert user_project.runpytest("--axiom-perf", "--axiom-perf-save=base.json").ret == 1
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
    )
    result.assert_outcomes(passed=1, failed=1)
    return user_project


def test_markdown_budgets_and_regressions_first(compared: pytest.Pytester) -> None:
    text = (compared.path / "out" / "summary.md").read_text()
    assert text.startswith("## pytest-axiomperf: FAILED\n")
    order = [
        "### Needs attention",
        "| `test_rep.py::test_over_budget` | latency budget | websocket_latency mean = 500.00ms",
        "| `test_rep.py::test_orders` | regression | api_response_times p95 ",
        "### Budgets",
        "### Baseline comparison",
        "| **regression** | `test_rep.py::test_orders` | api_response_times |",
        "### Metrics",
        "#### `test_rep.py::test_orders` passed",
        "| metric | n | mean | p50 | p90 | p95 | p99 | max |",
        "| api_response_times | 100 | ",
    ]
    positions = [text.find(part) for part in order]
    assert -1 not in positions, [p for p, i in zip(order, positions, strict=True) if i == -1]
    assert positions == sorted(positions)
    # The same summary is appended to GitHub's step summary, after what was there.
    step = (compared.path / "step_summary.md").read_text()
    assert step == "# earlier step\n" + text + "\n"


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
    # Nothing to fetch: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", html)
    assert html.count('<svg class="plot"') == 2
    assert html.count('class="budget"') == 3  # p95 and p99 of orders, mean of the other
    assert 'stroke="#8b949e" stroke-width="2" stroke-dasharray="6 4"' in html  # baseline
    assert "p95 budget 30.00ms" in html
    assert "regression: api_response_times p95 " in html


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
    # The inline script ran without error and found both plots in the DOM.
    assert '<p class="note" id="axiomperf-status">rendered 2 plot(s)</p>' in dom.stdout
    shot = tmp_path / "shot.png"
    done = _run_chromium(
        browser, tmp_path / "profile-shot", "--window-size=800,900", f"--screenshot={shot}", url
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for output in (dom.stderr, done.stderr):
        console = [line for line in output.splitlines() if ":CONSOLE(" in line]
        assert not console, console  # no console messages, let alone errors
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (800, 900)
    colours = set(pixels)
    assert len(colours) > 20, "the screenshot is (nearly) blank"
    assert (0x1F, 0x6F, 0xEB) in colours, "the current run's curve was not drawn"
    assert (0x8B, 0x94, 0x9E) in colours, "the baseline's curve was not drawn"


def test_markdown_cells_carry_no_markup() -> None:
    from pytest_axiomperf.report.markdown import _cell, _code

    assert _cell("GET /a|<script>&\nx") == "GET /a\\|&lt;script&gt;&amp; x"
    # A code span shows its text as written: escaping it would print "&lt;".
    assert _code("t.py::test_x[a<b|c&d]") == "`t.py::test_x[a<b\\|c&d]`"
