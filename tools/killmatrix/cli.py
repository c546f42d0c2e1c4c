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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.killmatrix.fingerprint import Fingerprint, fingerprints, stale_parts
from tools.killmatrix.jobs import run_job, run_matrix
from tools.killmatrix.judge import RunResult, evaluate_profiles, profile_levels
from tools.killmatrix.plan import (
    DOC_JSON,
    DOC_MD,
    FORMAT_VERSION,
    JOBS,
    PROFILES,
    ROOT,
    RUN_TIMEOUT,
    SAMPLE_SHARE,
    RunSpec,
    Subject,
    plan,
    shard_count,
    subjects,
)
from tools.killmatrix.publish import document_text, matrix_document, merge_sections, render_markdown
from tools.killmatrix.sample import default_seed, mismatches, sample


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
    mode.add_argument(
        "--check",
        action="store_true",
        help="fail when the committed matrix is stale (its fingerprint differs from the inputs') or a sampled run"
        " does not reproduce it: every precision subject's default run and one shard of the others (--full: every run)",
    )
    p.add_argument("--full", action="store_true", help="with --check: re-run every run and compare the whole matrix")
    p.add_argument(
        "--sample-seed",
        type=int,
        metavar="N",
        help="with --check: the sample's seed (default: the number of commits up to git HEAD; shard = N mod shards)",
    )
    p.add_argument(
        "--sample-share",
        type=float,
        default=SAMPLE_SHARE,
        metavar="F",
        help=f"with --check: the share of the fault and --strict precision runs re-run, in (0, 1] (default {SAMPLE_SHARE:g},"
        " i.e. ceil(1/F) shards)",
    )
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


def _committed() -> dict[str, Any] | None:
    return json.loads(DOC_JSON.read_text(encoding="utf-8")) if DOC_JSON.is_file() else None


def _regenerate(profile: str | None = None) -> str:
    return f"python -m tools.killmatrix --write{f' --profile {profile}' if profile else ''}"


def _stale(committed: Mapping[str, Any] | None, profiles: Sequence[str], fresh: Mapping[str, Fingerprint]) -> list[str]:
    """Why the committed matrix cannot vouch for the code's runs: another format, a
    profile without a section, or inputs whose fingerprint differs from the recorded one."""
    if committed is None or committed.get("format_version") != FORMAT_VERSION:
        found = "none" if committed is None else f"format {committed.get('format_version')}"
        return [f"{DOC_JSON.relative_to(ROOT)} is {found}, not format {FORMAT_VERSION}: regenerate with `{_regenerate()}`"]
    sections = {section["profile"]: section for section in committed.get("profiles", ())}
    problems = []
    for profile in profiles:
        section = sections.get(profile)
        if section is None:
            problems.append(f"profile {profile}: no section in the committed matrix: regenerate with `{_regenerate(profile)}`")
            continue
        changed = stale_parts(section.get("fingerprint"), fresh[profile])
        if changed:
            problems.append(
                f"profile {profile}: the committed matrix is stale -- its fingerprint differs in: {', '.join(changed)}"
                f" (committed {(section.get('fingerprint') or {}).get('sha256', 'none')}, now {fresh[profile]['sha256']});"
                f" regenerate with `{_regenerate(profile)}`"
            )
    return problems


def _consistent(committed: Mapping[str, Any], profiles: Sequence[str], everything: Mapping[str, Subject]) -> list[str]:
    """What a sampled check relies on in the committed files besides the fingerprint:
    they are as --write writes them, every profile's matrix holds, and its rows are the
    planned subjects'."""
    problems = [f"{path.relative_to(ROOT)}: not as --write writes it" for path, text in _texts(committed).items() if _compare(path, text)]
    for section in committed["profiles"]:
        profile = section["profile"]
        if profile not in profiles:
            continue
        if not section["summary"]["holds"]:
            problems.append(f"profile {profile}: the committed matrix does not hold")
        rows = {row["name"] for key in ("faults", "precision") for row in section[key]}
        planned = {s.name for s in everything.values() if s.profile == profile}
        if rows != planned:
            problems.append(f"profile {profile}: the committed rows are not the planned subjects ({', '.join(sorted(rows ^ planned))})")
    return problems


def _texts(doc: Mapping[str, Any]) -> dict[Path, str]:
    return {DOC_JSON: document_text(doc), DOC_MD: render_markdown(doc)}


def _run(specs: Sequence[RunSpec], args: argparse.Namespace) -> tuple[dict[str, RunResult], float]:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.keep:
            workdir = args.keep.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="killmatrix-")))
        results = run_matrix(specs, jobs=args.jobs, workdir=workdir, timeout=args.run_timeout)
    return results, time.monotonic() - started


def _check_sample(args: argparse.Namespace, profiles: Sequence[str], everything: Mapping[str, Subject], committed: Mapping[str, Any]) -> int:
    """--check without --full: every precision subject's default run and one shard of
    the others, each to reproduce the committed matrix."""
    out = sys.stdout
    if args.sample_seed is None:
        seed, origin = default_seed()
    else:
        seed, origin = args.sample_seed, "--sample-seed"
    chosen = [s for s in everything.values() if s.profile in profiles]
    picked = sample(chosen, seed, args.sample_share)
    out.write(f"{picked.describe()}; seed from {origin}\n")
    for profile in profiles:
        mine = {s.name for s in chosen if s.profile == profile}
        runs = plan([s for s in chosen if s.profile == profile])
        precision = [spec for spec in picked.precision if spec.subject in mine]
        rotating = [spec for spec in picked.rotating if spec.subject in mine]
        out.write(
            f"profile {profile}: {len(precision)} default precision runs + {len(rotating)} of"
            f" {len(runs) - len(precision)} others = {len(precision) + len(rotating)} of {len(runs)} runs;"
            f" shard: {', '.join(spec.key for spec in rotating) or 'none'}\n"
        )
    results, elapsed = _run(picked.runs, args)
    out.write(f"kill matrix sample: {len(picked.runs)} runs in {elapsed:.0f} s with {args.jobs} jobs\n")
    levels = {p: profile_levels(p) for p in profiles}
    sections = {section["profile"]: section for section in committed["profiles"]}
    problems = mismatches(picked.runs, results, everything, sections, levels)
    for problem in problems:
        out.write(f"  {problem}\n")
    if problems:
        out.write(
            f"{len(problems)} differences: the sampled runs do not reproduce the committed matrix (see them all with"
            f" --check --full; regenerate with `{_regenerate()}` once the change is meant)\n"
        )
        return 1
    out.write("every sampled run reproduces the committed matrix; the fingerprints vouch for the rest\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.job:
        return run_job(RunSpec(args.job, args.job_strict), args.job_dir)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if not args.check and (args.full or args.sample_seed is not None or args.sample_share != SAMPLE_SHARE):
        parser.error("--full, --sample-seed and --sample-share go with --check")
    try:
        shard_count(args.sample_share)
    except ValueError as e:
        parser.error(str(e))
    everything = subjects()
    profiles = tuple(p for p in PROFILES if p in (args.profile or PROFILES))
    if args.only:
        unknown = sorted(set(args.only) - set(everything))
        if unknown:
            parser.error(f"unknown name(s) {', '.join(unknown)}; see conformance/reference/faults/ and variants.py")
        if args.write or args.check:
            parser.error("--write and --check publish the whole matrix: drop --only")
        chosen = [s for s in everything.values() if s.name in set(args.only) and s.profile in profiles]
    else:
        chosen = [s for s in everything.values() if s.profile in profiles]
    out = sys.stdout
    # Of the inputs as the runs find them; compared again after the runs (a --write).
    prints = fingerprints(profiles, list(everything.values()))
    # A terminated runner ends its runs too (they are sessions of their own).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.check:
        committed = _committed()
        stale = _stale(committed, profiles, prints)
        if stale:
            out.write("\n".join(stale) + "\n")
            return 1
        assert committed is not None
        matched = ", ".join(f"{p} {prints[p]['sha256'][:16]}" for p in profiles)
        out.write(f"fingerprints match the committed matrix: {matched}\n")
        if not args.full:
            broken = _consistent(committed, profiles, everything)
            if broken:
                out.write("\n".join(broken) + "\n")
                return 1
            return _check_sample(args, profiles, everything, committed)
    specs = plan(chosen)
    results, elapsed = _run(specs, args)
    matrices = evaluate_profiles(chosen, results, everything, complete=not args.only)
    from tools.killmatrix.derived import derive_factors

    fresh = matrix_document(matrices, {"doc": derive_factors()[0]} if "doc" in matrices else {}, prints)
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
    doc = merge_sections(fresh, _committed() if args.profile else None)
    texts = _texts(doc)
    if args.write:
        if fingerprints(profiles, list(subjects().values())) != prints:
            out.write("the inputs changed while the matrix ran (their fingerprint differs): nothing written; run --write again\n")
            return 1
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
