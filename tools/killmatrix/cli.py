"""``python -m tools.killmatrix``: run the matrix, judge it, publish or check it."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tools.killmatrix.jobs import run_job, run_matrix
from tools.killmatrix.judge import evaluate_profiles
from tools.killmatrix.plan import (
    DOC_JSON,
    DOC_MD,
    JOBS,
    PROFILES,
    ROOT,
    RUN_TIMEOUT,
    RunSpec,
    plan,
    subjects,
)
from tools.killmatrix.publish import document_text, matrix_document, merge_sections, render_markdown


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.killmatrix",
        description="Run the suite once per fault and per variant; judge recall and precision.",
    )
    p.add_argument("--jobs", type=int, default=JOBS, help=f"runs at a time (default {JOBS})")
    p.add_argument(
        "--only", nargs="+", metavar="NAME", help="only these faults / variants ('clean', 'independent', 'clean_coze', ... too)"
    )
    p.add_argument(
        "--profile",
        action="append",
        choices=PROFILES,
        help="only this profile's subjects (repeatable; default: every profile); with --write or --check, only its"
        " section of the published matrix is computed, the others are kept as committed",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {DOC_JSON.relative_to(ROOT)} and {DOC_MD.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="fail when the committed matrix differs from a fresh run")
    p.add_argument("--run-timeout", type=float, default=RUN_TIMEOUT, help=f"seconds one run may take (default {RUN_TIMEOUT:g})")
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep every run's log and reports in DIR")
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--job-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--job-strict", action="store_true", help=argparse.SUPPRESS)
    return p


def _compare(path: Path, fresh: str) -> list[str]:
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old == fresh:
        return []
    rel = str(path.relative_to(ROOT))
    return list(difflib.unified_diff(old.splitlines(), fresh.splitlines(), f"{rel} (committed)", f"{rel} (fresh run)", lineterm=""))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.job:
        return run_job(RunSpec(args.job, args.job_strict), args.job_dir)
    if args.jobs < 1:
        _parser().error("--jobs must be at least 1")
    everything = subjects()
    profiles = tuple(p for p in PROFILES if p in (args.profile or PROFILES))
    if args.only:
        unknown = sorted(set(args.only) - set(everything))
        if unknown:
            _parser().error(f"unknown name(s) {', '.join(unknown)}; see conformance/reference/faults/ and variants.py")
        if args.write or args.check:
            _parser().error("--write and --check publish the whole matrix: drop --only")
        chosen = [s for s in everything.values() if s.name in set(args.only) and s.profile in profiles]
    else:
        chosen = [s for s in everything.values() if s.profile in profiles]
    specs = plan(chosen)
    # A terminated runner ends its runs too (they are sessions of their own).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = args.keep.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="killmatrix-")))
        results = run_matrix(specs, jobs=args.jobs, workdir=workdir, timeout=args.run_timeout)
    elapsed = time.monotonic() - started
    matrices = evaluate_profiles(chosen, results, everything, complete=not args.only)
    from tools.killmatrix.derived import derive_factors

    fresh = matrix_document(matrices, {"doc": derive_factors()[0]} if "doc" in matrices else {})
    out = sys.stdout
    out.write(f"kill matrix: {len(specs)} runs in {elapsed:.0f} s with {args.jobs} jobs\n")
    problems = [problem for matrix in matrices.values() for problem in matrix.problems]
    for section, matrix in zip(fresh["profiles"], matrices.values(), strict=True):
        summary = section["summary"]
        out.write(
            f"profile {matrix.profile}: recall {matrix.killed}/{len(matrix.faults)} ({summary['recall']}),"
            f" precision {matrix.passing}/{len(matrix.precision)} ({summary['precision']})\n"
        )
        for problem in matrix.problems:
            out.write(f"  {problem}\n")
    status = 1 if problems else 0
    # A --profile run publishes its profiles' sections; the others stay as committed.
    committed = json.loads(DOC_JSON.read_text(encoding="utf-8")) if DOC_JSON.is_file() and args.profile else None
    doc = merge_sections(fresh, committed)
    texts = {DOC_JSON: document_text(doc), DOC_MD: render_markdown(doc)}
    if args.write:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        out.write(f"wrote {', '.join(str(p.relative_to(ROOT)) for p in texts)}\n")
    elif args.check:
        diffs = [line for path, text in texts.items() for line in _compare(path, text)]
        if diffs:
            out.write("the committed kill matrix differs from a fresh run (regenerate with --write):\n")
            out.write("\n".join(diffs[:200]) + "\n")
            status = 1
        else:
            out.write("the committed kill matrix is up to date\n")
    out.write("the matrix holds\n" if not problems else f"the matrix does not hold ({len(problems)} problems)\n")
    return status
