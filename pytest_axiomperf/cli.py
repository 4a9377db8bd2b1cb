"""The ``axiomperf`` command: compare two results files, show one, or A/B two revisions.

Exit codes: 0 fine, 1 a regression (``compare``, ``ab``; ``ab`` also when the working
tree's tests failed), 2 a bad file or usage (or an A/B run that could not be made, or
was interrupted). A
file that breaks ``show`` or ``compare`` is a bad file (2), never a regression (1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pytest_axiomperf import record
from pytest_axiomperf.ab import (
    DEFAULT_PASSES,
    DEFAULT_PROCESS_ROUNDS,
    DEFAULT_ROUNDS,
    ABError,
    ABRun,
    write_outputs,
)
from pytest_axiomperf.baseline import Comparison, compare, load_results
from pytest_axiomperf.errors import BaselineError
from pytest_axiomperf.report.comparison import render_comparison
from pytest_axiomperf.report.terminal import render_terminal_report
from pytest_axiomperf.report.text import printable
from pytest_axiomperf.settings import (
    Settings,
    parse_choice,
    parse_non_negative,
    parse_passes,
    parse_percent,
    parse_rounds,
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


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    """The gate's threshold and optional absolute floor, shared by compare and ab."""
    parser.add_argument(
        "--threshold",
        type=_arg(parse_percent),
        default=Settings.threshold,
        metavar="PCT",
        help="smallest (typical round) p95 regression in percent that can fail (default 10)",
    )
    parser.add_argument(
        "--noise-floor",
        type=_arg(parse_non_negative),
        default=Settings.noise_floor,
        metavar="MS",
        help="smallest p95 regression in milliseconds that can fail (default 0: none)",
    )


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
    _add_rule_options(cmp)
    cmp.add_argument(
        "--mismatch",
        type=_arg(parse_choice("warn", "refuse")),
        default=Settings.mismatch,
        metavar="warn|refuse",
        help="when the environments or exchange profiles differ (default warn)",
    )
    show = sub.add_parser("show", help="print the report of a results file")
    show.add_argument("path", type=Path, metavar="RESULTS.json")
    ab = sub.add_parser(
        "ab",
        help="measure a git revision (--base) and the working tree alternately, round by "
        "round, and compare them; exit 1 on a regression",
        description="Same-job A/B. Other arguments (after -- if they look like options of "
        "this command) go to each pytest run, e.g. axiomperf ab --base origin/main tests/perf/",
    )
    ab.add_argument("--base", required=True, metavar="REF", help="the revision to compare with")
    ab.add_argument(
        "--rounds",
        type=_arg(parse_rounds),
        default=None,
        metavar="N",
        help=f"rounds a side, the two sides taking turns (default {DEFAULT_ROUNDS}; "
        f"{DEFAULT_PROCESS_ROUNDS} under pytest-xdist, where each round is a process)",
    )
    ab.add_argument(
        "--passes",
        type=_arg(parse_passes),
        default=DEFAULT_PASSES,
        metavar="K",
        help="passes of the tests in each round; each statistic keeps its best "
        f"pass (default {DEFAULT_PASSES})",
    )
    _add_rule_options(ab)
    ab.add_argument(
        "--json", type=Path, metavar="PATH", help="write the head's results and the comparison"
    )
    ab.add_argument("--markdown", type=Path, metavar="PATH", help="write a Markdown report")
    ab.add_argument("--html", type=Path, metavar="PATH", help="write an HTML report")
    ab.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep each side's results and pytest output here"
    )
    record.add_parser(sub)
    return parser


def _run_ab(args: argparse.Namespace, pytest_args: list[str]) -> int:
    run = ABRun(
        base_ref=args.base,
        rounds=args.rounds,
        pytest_args=pytest_args,
        threshold=args.threshold,
        noise_floor=args.noise_floor,
        workdir=args.keep,
        passes=args.passes,
        say=lambda line: print(line, flush=True),
    )
    comparison, base, head = run.run()
    print(render_comparison(comparison))
    for line in write_outputs(comparison, base, head, args.json, args.markdown, args.html):
        print(f"axiomperf ab wrote the {line}")
    if head.tests_failed:
        rounds = ", ".join(str(i) for i in head.failed_rounds)
        where = f" in round(s) {rounds}" if rounds else ""
        print(f"axiomperf ab: tests failed on the working tree{where}")
    return EXIT_REGRESSION if comparison.regressions or head.tests_failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (also the console script's entry point)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    passed: list[str] = []
    if "--" in argv:  # everything after -- goes to pytest as it is
        argv, passed = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    try:
        if argv[:1] == ["ab"]:
            args, unknown = parser.parse_known_args(argv)
            passed = unknown + passed
        else:
            args = parser.parse_args(argv + (["--", *passed] if passed else []))
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command == "ab":
            return _run_ab(args, passed)
        if args.command == "record":
            return record.run(args)
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
            _print(render_comparison(comparison))
            if comparison.refused:
                return EXIT_BAD_INPUT
            return EXIT_REGRESSION if comparison.regressions else EXIT_OK
        results = load_results(args.path, role="results")
        stored = Comparison.from_dict(results.comparison) if results.comparison else None
        _print(render_terminal_report(results, stored, verbose=True))
        return EXIT_OK
    except (BaselineError, ABError) as exc:
        print(f"axiomperf: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C: ab's pytest processes are stopped on the way out
        print(f"axiomperf {args.command}: interrupted", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"axiomperf: error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if args.command == "ab":
            raise
        # Whatever a hand-made file still breaks must not read as exit 1, a regression.
        files = " or ".join(str(p) for p in vars(args).values() if isinstance(p, Path))
        print(
            printable(f"axiomperf: error: cannot read {files}: {type(exc).__name__}: {exc}"),
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


def _print(text: str) -> None:
    """Print to stdout; a reader that went away (``| head -1``) ends the output quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
