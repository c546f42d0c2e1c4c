"""``coze-conformance``: run the suite, list the requirements, export OpenAPI.

* ``coze-conformance run [pytest args]`` -- ``pytest --pyargs conformance`` with the
  reports going to ``./conformance-reports`` unless ``--report-dir`` (or
  ``COZE_REPORT_DIR``, or the ini key ``coze_report_dir``) says otherwise; every
  other argument is pytest's (``coze-conformance run --help`` lists them). The exit
  code is the suite's (docs/reports.md).
* ``coze-conformance requirements [--profile NAME] [--json] [-v]`` -- the catalogue.
* ``coze-conformance export-openapi [--profile NAME] [-o FILE] [--schemathesis-config FILE]`` --
  OpenAPI 3.2, and the schemathesis settings that go with it.
* ``coze-conformance compare OLD/results.json NEW/results.json [--format text|markdown|json]
  [--allow-profile-change]`` -- what changed between two runs, requirement by requirement
  (conformance.reporting.compare).

A usage error exits with 4, like the suite's own -- except in ``compare``, whose exit
codes are diff(1)'s: 0 nothing regressed, 1 something did, 2 trouble (an unreadable or
invalid file, runs of different profiles, bad usage).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["DEFAULT_REPORT_DIR", "main"]

DEFAULT_REPORT_DIR = "conformance-reports"
USAGE_ERROR = int(pytest.ExitCode.USAGE_ERROR)
#: ``compare``'s exit codes, diff(1)'s.
COMPARE_SAME, COMPARE_REGRESSED, COMPARE_TROUBLE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage; pytest (and so the suite) says 4."""

    usage_status = USAGE_ERROR

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_status, f"{self.prog}: error: {message}\n")


class _CompareParser(_Parser):
    """``compare`` says 2 on bad usage, like diff(1): 1 means "regressed"."""

    usage_status = COMPARE_TROUBLE


class DefaultReportDir:
    """A pytest plugin for ``run``: fill in ``--report-dir`` only when no command-line
    option, environment variable or ini key set it (the settings' precedence), and
    say where the reports go."""

    def __init__(self, default: str) -> None:
        self.default = default
        self.chosen: Path | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> None:
        value = config.getoption("report_dir", None) or os.environ.get("COZE_REPORT_DIR") or config.getini("coze_report_dir")
        if not value:
            config.option.report_dir = value = self.default
        self.chosen = (config.invocation_params.dir / str(value)).resolve()
        if not (config.option.help or config.option.version):
            sys.stdout.write(f"coze-conformance: reports go to {self.chosen}\n")
            sys.stdout.flush()


def run(pytest_args: Sequence[str], *, default_report_dir: str = DEFAULT_REPORT_DIR) -> int:
    """``pytest --pyargs conformance [pytest_args]``; pytest's exit code."""
    return int(pytest.main(["--pyargs", "conformance", *pytest_args], plugins=[DefaultReportDir(default_report_dir)]))


def _requirements(args: argparse.Namespace) -> int:
    from conformance.oracle.catalogue import format_catalogue, load_catalogue

    catalogue = load_catalogue()
    if args.profile:
        catalogue = catalogue.for_profile(args.profile)
    if args.json:
        rows = [dataclasses.asdict(r) for r in catalogue.values()]
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(format_catalogue(catalogue, verbose=args.verbose) + "\n")
    return 0


def _export_openapi(args: argparse.Namespace) -> int:
    from conformance.oracle.openapi import SCHEMATHESIS_CONFIG, build_openapi

    text = json.dumps(build_openapi(args.profile), ensure_ascii=False, indent=2) + "\n"
    writes = [(args.output, text)]
    if args.schemathesis_config:
        writes.append((args.schemathesis_config, SCHEMATHESIS_CONFIG.read_text(encoding="utf-8")))
    for target, content in writes:
        if target in (None, "-"):
            sys.stdout.write(content)
            continue
        try:
            Path(target).write_text(content, encoding="utf-8")
        except OSError as exc:
            sys.stderr.write(f"coze-conformance export-openapi: cannot write {target}: {exc.strerror or exc}\n")
            return USAGE_ERROR
        sys.stderr.write(f"coze-conformance: wrote {target}\n")
    return 0


def _compare(argv: Sequence[str]) -> int:
    from conformance.reporting.compare import ResultsError, compare, different_profiles, load_results, render

    args = compare_parser().parse_args(argv)
    prog = "coze-conformance compare"
    try:
        old, new = load_results(args.old), load_results(args.new)
    except ResultsError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return COMPARE_TROUBLE
    refusal = different_profiles(old, new)
    if refusal is not None and not args.allow_profile_change:
        sys.stderr.write(f"{prog}: {refusal}; --allow-profile-change compares them anyway\n")
        return COMPARE_TROUBLE
    comparison = compare(old, new, old_path=args.old, new_path=args.new)
    sys.stdout.write(render(comparison, args.format) + "\n")
    return COMPARE_REGRESSED if comparison.regressed else COMPARE_SAME


COMPARE_HELP = (
    "what changed between two runs, requirement by requirement; exit 0 nothing regressed, 1 something did, "
    "2 an unreadable or invalid file, or runs of different profiles"
)


def compare_parser() -> argparse.ArgumentParser:
    compare = _CompareParser(
        prog="coze-conformance compare",
        description=COMPARE_HELP[0].upper() + COMPARE_HELP[1:] + ". A regression is a requirement that got worse "
        "(PASS < WARN < FAIL) or that was judged and now is not (SKIP or NOT RUN: coverage lost), or a worse verdict.",
    )
    compare.add_argument("old", metavar="OLD", help="results.json of the earlier run")
    compare.add_argument("new", metavar="NEW", help="results.json of the later run")
    compare.add_argument("--format", choices=("text", "markdown", "json"), default="text", help="output format (default: text)")
    compare.add_argument(
        "--allow-profile-change", action="store_true",
        help="compare runs of different profiles (refused otherwise: a profile decides which requirements exist)",
    )
    return compare


def _profile(value: str) -> str:
    from conformance.oracle.profile import available_profiles

    known = available_profiles()
    if value not in known:
        raise argparse.ArgumentTypeError(f"unknown profile {value!r}; available: {', '.join(known)}")
    return value


def parser() -> argparse.ArgumentParser:
    import conformance

    top = _Parser(prog="coze-conformance", description="Conformance suite for the Coze Plus Agent (智能体) API.")
    top.add_argument("--version", action="version", version=f"%(prog)s {conformance.__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    commands.add_parser(
        "run", add_help=False,
        help=f"run the suite (pytest --pyargs conformance); reports go to ./{DEFAULT_REPORT_DIR} unless --report-dir says "
             "otherwise; every other argument is pytest's (coze-conformance run --help)",
    )
    listing = commands.add_parser("requirements", help="print the requirement catalogue")
    listing.add_argument("--profile", type=_profile, help="only the requirements of this profile")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.add_argument("-v", "--verbose", action="store_true", help="with the quoted spec sentence, reading and note")
    export = commands.add_parser(
        "export-openapi", help="write an OpenAPI 3.2 document of a profile, built from it and schemas/"
    )
    export.add_argument("--profile", type=_profile, default="doc", help="wire profile (default: doc)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    export.add_argument(
        "--schemathesis-config", metavar="FILE",
        help="also write the schemathesis settings for the document (the checks it leaves off, and why)",
    )
    # Listed for --help; main() hands "compare" to compare_parser(), whose usage errors exit 2.
    commands.add_parser("compare", add_help=False, help=COMPARE_HELP)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "run":
        # Everything after "run" is pytest's, --help included: argparse would eat it.
        return run(args[1:])
    if args and args[0] == "compare":
        return _compare(args[1:])
    parsed = parser().parse_args(args)
    if parsed.command == "requirements":
        return _requirements(parsed)
    return _export_openapi(parsed)


if __name__ == "__main__":  # pragma: no cover - python -m conformance.cli
    sys.exit(main())
