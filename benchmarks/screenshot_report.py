"""Screenshot an HTML report in headless Chromium and measure its page height.

Run: python benchmarks/screenshot_report.py REPORT.html [--png OUT.png] [--size 1400x900]

Prints the page's total height (``document.documentElement.scrollHeight`` at the
given window width) and the HTML file's size, and writes the first screen (what a
reader sees without scrolling) as a PNG. The report itself is not changed: the
height is read from a copy with one measuring script appended.

The README's screenshot is made by this command on the report of
``pytest --axiom-perf examples/`` compared with a baseline (see the README).
Needs ``chromium`` (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_MEASURE = (
    "<script>document.body.setAttribute('data-page-height',"
    "String(document.documentElement.scrollHeight));</script>"
)
_OPEN_ALL = (
    "<script>document.querySelectorAll('details').forEach(function(d){d.open=true;});</script>"
)


def chromium() -> str:
    """The Chromium binary, or exit with how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("chromium not found (Debian: apt-get install chromium)")


def run_chromium(browser: str, profile: Path, *args: str) -> str:
    """Run headless Chromium once; its stdout (the DOM for ``--dump-dom``)."""
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"chromium failed ({done.returncode}): {done.stderr[-1000:]}")
    return done.stdout


def page_height(
    browser: str, report: Path, width: int, height: int, work: Path, open_all: bool = False
) -> int:
    """The report's scroll height in pixels at ``width`` x ``height`` (``open_all``:
    with every folded test opened, as printed)."""
    copy = work / "measure.html"
    text = report.read_text(encoding="utf-8")
    scripts = (_OPEN_ALL if open_all else "") + _MEASURE
    copy.write_text(text.replace("</body>", scripts + "</body>", 1), encoding="utf-8")
    dom = run_chromium(
        browser,
        work / "profile-dom",
        f"--window-size={width},{height}",
        "--dump-dom",
        copy.as_uri(),
    )
    found = re.search(r'data-page-height="(\d+)"', dom)
    if found is None:
        sys.exit("could not read the page height from the DOM")
    return int(found.group(1))


def screenshot(browser: str, report: Path, png: Path, width: int, height: int, work: Path) -> None:
    """The first screen of ``report`` as a PNG."""
    png.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(
        browser,
        work / "profile-shot",
        f"--window-size={width},{height}",
        f"--screenshot={png.resolve()}",
        report.resolve().as_uri(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--png", type=Path, default=None, help="write the first screen here")
    parser.add_argument("--size", default="1400x900", help="window WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    browser = chromium()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        total = page_height(browser, args.report, width, height, work)
        opened = page_height(browser, args.report, width, height, work, open_all=True)
        print(
            f"{args.report}: page height {total} px at {width}x{height} "
            f"({opened} px with every test open), {args.report.stat().st_size / 1024:.1f} KB"
        )
        if args.png is not None:
            screenshot(browser, args.report, args.png, width, height, work)
            print(f"first screen: {args.png} ({args.png.stat().st_size / 1024:.1f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
