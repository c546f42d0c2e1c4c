"""What ``--check`` re-runs: a deterministic sample of the matrix's runs, and whether
each sampled run reproduces the committed matrix.

The sample is every precision subject's default run (the clean servers, the independent
servers, every variant: a false FAIL, the suite failing a legal server, is the worse
bug, and those runs are where one shows) and one shard of the other runs -- every
fault's run and every precision subject's ``--strict`` run. The other runs are dealt,
profile by profile, into ``ceil(1 / share)`` shards of nearly equal size (ordered by a
hash of the run's key, so that a shard mixes every kind of run and no seed decides the
deal); the seed picks the shard, ``seed mod shards``. The default seed is the number of
commits up to HEAD: successive commits check successive shards, and any ``ceil(1 / share)``
successive commits re-run every run of the matrix.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.killmatrix.judge import RunResult, judge_fault, judge_precision_run
from tools.killmatrix.plan import PROFILES, ROOT, SAMPLE_SHARE, RunSpec, Subject, plan, shard_count
from tools.killmatrix.publish import fault_entry

__all__ = ["Sample", "default_seed", "mismatches", "sample"]


@dataclass(frozen=True)
class Sample:
    """The runs a check re-runs, in plan order, and how they were chosen."""

    seed: int
    share: float
    shard: int  # which of `shards`
    shards: int
    precision: tuple[RunSpec, ...]  # every precision subject's default run
    rotating: tuple[RunSpec, ...]  # this seed's shard of the other runs
    total: int  # every run of the matrix (of the profiles chosen)

    @property
    def runs(self) -> list[RunSpec]:
        return [*self.precision, *self.rotating]

    def describe(self) -> str:
        runs = len(self.runs)
        others = self.total - len(self.precision)
        return (
            f"sample (seed {self.seed}, share {self.share:g}: shard {self.shard + 1} of {self.shards}):"
            f" {len(self.precision)} precision runs by default (all of them) + {len(self.rotating)} of {others} fault and"
            f" --strict precision runs = {runs} of {self.total} runs ({100.0 * runs / self.total if self.total else 0:.1f} %);"
            f" any {self.shards} successive seeds re-run every run"
        )


def _order(spec: RunSpec) -> str:
    return hashlib.sha256(spec.key.encode()).hexdigest()


def sample(chosen: Sequence[Subject], seed: int, share: float = SAMPLE_SHARE) -> Sample:
    """The sample of the chosen subjects' runs for ``seed``: deterministic, and the
    shards of ``ceil(1 / share)`` successive seeds together hold every other run once."""
    shards = shard_count(share)
    shard = seed % shards
    specs = plan(chosen)
    by_name = {s.name: s for s in chosen}
    precision = [spec for spec in specs if not by_name[spec.subject].is_fault and not spec.strict]
    mandatory = set(precision)
    in_shard: set[RunSpec] = set()
    for profile in PROFILES:
        others = sorted((spec for spec in specs if by_name[spec.subject].profile == profile and spec not in mandatory), key=_order)
        in_shard.update(others[shard::shards])
    return Sample(
        seed=seed,
        share=share,
        shard=shard,
        shards=shards,
        precision=tuple(precision),
        rotating=tuple(spec for spec in specs if spec in in_shard),
        total=len(specs),
    )


def default_seed(root: Path = ROOT) -> tuple[int, str]:
    """The number of commits up to HEAD, and where it came from; 0 without git."""
    try:
        out = subprocess.run(
            ["git", "rev-list", "--count", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        return int(out), "the number of commits up to git HEAD"
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0, "0: no git HEAD to count commits from"


def _committed_rows(section: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    return {row["name"]: row for row in section.get(key, ())}


def mismatches(
    runs: Iterable[RunSpec],
    results: Mapping[str, RunResult],
    everything: Mapping[str, Subject],
    committed: Mapping[str, Mapping[str, Any]],
    levels: Mapping[str, Mapping[str, str]],
) -> list[str]:
    """Where a sampled run does not reproduce the committed matrix (``committed``: its
    sections by profile). A fault's run must give its published row exactly; a precision
    subject's run must give the FAIL and WARN of its mode that the committed row lists,
    and no problem (the committed matrix holds)."""
    found: list[str] = []
    for spec in runs:
        subject = everything[spec.subject]
        section = committed[subject.profile]
        result = results.get(spec.key)
        if subject.is_fault:
            row = judge_fault(subject, result, levels[subject.profile])
            old = _committed_rows(section, "faults").get(subject.name)
            fresh = fault_entry(row)
            if old != fresh:
                changed = sorted(k for k in set(fresh) | set(old or {}) if (old or {}).get(k) != fresh.get(k))
                found.extend(f"`{spec.key}`: {k} was {(old or {}).get(k)!r}, now {fresh.get(k)!r}" for k in changed)
            found.extend(f"`{spec.key}`: {p}" for p in row.problems)
            continue
        run = judge_precision_run(subject, result, spec.strict, levels[subject.profile])
        old = _committed_rows(section, "precision").get(subject.name) or {}
        expected = {"strict_fail": old.get("strict_fail")} if spec.strict else {
            "default_fail": old.get("default_fail"),
            "default_warn": old.get("default_warn"),
        }
        fresh_fields = {"strict_fail": list(run.fail)} if spec.strict else {
            "default_fail": list(run.fail),
            "default_warn": list(run.warn),
        }
        found.extend(
            f"`{spec.key}`: {k} was {expected[k]!r}, now {fresh_fields[k]!r}" for k in expected if expected[k] != fresh_fields[k]
        )
        found.extend(f"`{spec.key}`: {p}" for p in run.problems)
    return found
