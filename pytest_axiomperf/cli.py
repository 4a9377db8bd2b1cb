"""The ``axiomperf`` command: compare two results files, or show one.

Exit codes: 0 fine, 1 a regression (``compare``), 2 a bad file or usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pytest_axiomperf.baseline import Comparison, compare, load_results
from pytest_axiomperf.errors import BaselineError
from pytest_axiomperf.report.comparison import render_comparison
from pytest_axiomperf.report.terminal import render_terminal_report
from pytest_axiomperf.settings import (
    Settings,
    parse_choice,
    parse_non_negative,
    parse_percent,
)

T = TypeVar("T")

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2


def _arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """Wrap a settings parser so argparse reports its message (not just 'invalid value')."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="axiomperf", description="pytest-axiomperf results: compare two runs, show one."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmp = sub.add_parser(
        "compare",
        help="compare NEW with the baseline OLD; exit 1 on a significant regression",
    )
    cmp.add_argument("old", type=Path, metavar="OLD.json", help="the baseline results")
    cmp.add_argument("new", type=Path, metavar="NEW.json", help="the results to check")
    cmp.add_argument(
        "--threshold",
        type=_arg(parse_percent),
        default=Settings.threshold,
        metavar="PCT",
        help="smallest p95 regression in percent that can fail (default 10)",
    )
    cmp.add_argument(
        "--noise-floor",
        type=_arg(parse_non_negative),
        default=Settings.noise_floor,
        metavar="MS",
        help="smallest p95 regression in milliseconds that can fail (default 1)",
    )
    cmp.add_argument(
        "--mismatch",
        type=_arg(parse_choice("warn", "refuse")),
        default=Settings.mismatch,
        metavar="warn|refuse",
        help="when the environments or exchange profiles differ (default warn)",
    )
    show = sub.add_parser("show", help="print the report of a results file")
    show.add_argument("path", type=Path, metavar="RESULTS.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (also the console script's entry point)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command == "compare":
            old, new = load_results(args.old), load_results(args.new, role="results")
            comparison = compare(
                old,
                new,
                threshold=args.threshold,
                noise_floor=args.noise_floor,
                mismatch=args.mismatch,
                baseline=str(args.old),
            )
            print(render_comparison(comparison))
            if comparison.refused:
                return EXIT_BAD_INPUT
            return EXIT_REGRESSION if comparison.regressions else EXIT_OK
        results = load_results(args.path, role="results")
        stored = Comparison.from_dict(results.comparison) if results.comparison else None
        print(render_terminal_report(results, stored))
        return EXIT_OK
    except BaselineError as exc:
        print(f"axiomperf: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
