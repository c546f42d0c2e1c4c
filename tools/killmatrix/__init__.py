"""The kill matrix: the suite's recall and precision, requirement by requirement.

    python -m tools.killmatrix [--jobs N] [--profile P ...] [--only NAME ...] [--write | --check [--full]]

Profile by profile (``PROFILES``: ``doc``, then ``coze``, the suite's ``--profile``):
each subject has a profile, its runs pass ``--profile`` to the suite and start the
reference server in that profile's dialect (``RUNS``), and each profile is judged and
published on its own, against its own catalogue. The suite runs once per fault of the reference server (``conformance/reference/faults/``)
and once per wire variant (``conformance/reference/variants.py``), each time against a
fresh server (fresh rate-limit budget), plus the clean reference server and the
independent server of ``tests/independent/``. Every run is a subprocess of its own: a
small job (``--job``) starts the server in-process and runs the suite
with ``pytest.main`` against it -- a 10 ms model delay, a short rate window, five fuzz
examples, short deadlines, every test run.

What a run proves (README, "Kill matrix"):

* **recall** -- a fault is *killed* only when the requirement it declares gets FAIL
  through a check attributed to that id: MUST faults in a default run, SHOULD faults
  under ``--strict``. Another requirement failing does not count; it is listed as the
  fault's collateral (more than :data:`COLLATERAL_LIMIT` needs the fault's written reason).
* **precision** -- the clean server and every ``preferred`` variant pass with zero FAIL
  and zero WARN, by default and under ``--strict``; every ``alternate`` variant (and the
  independent server, which takes alternate readings) has zero FAIL by default and under
  ``--strict`` fails exactly the SHOULD ids it declares.
* every conformance test is failed by at least one fault, and every MUST and SHOULD
  requirement of the profile has a fault.

The runner exits 1, saying why, when any of these does not hold (or a run crashed,
timed out, or ended in a suite ERROR: a broken server must meet a FAIL, never a crash).
``--write`` publishes ``docs/kill-matrix.json`` and ``docs/kill-matrix.md`` (sorted, no
times), each profile's section with the fingerprint of its inputs (``fingerprint.py``).
``--check`` (CI) fails when a profile's fingerprint differs from the committed one (the
matrix is stale: ``--write --profile P``), then re-runs a sample (``sample.py``): every
precision subject's default run and one rotating shard of the others, each of which must
reproduce its committed row. ``--check --full`` runs everything again and compares the files.

The outcomes are read from each run's ``results.json`` (conformance/reporting/certification.py): per
requirement its outcome and its outcome in each test, the tests that ERRORed and the
verdict's status; and from its ``junit.xml`` the failing test cases, with the
requirements each one's failure names. Every run must tell one truth: a non-zero exit
comes with a failing JUnit test case and a NOT CONFORMANT verdict, exit 0 with none, and
every requirement that FAILs -- and every test that recorded a FAIL -- is a failing
JUnit test case naming it.
"""

from __future__ import annotations

from tools.killmatrix.cli import main
from tools.killmatrix.judge import (
    FaultRow,
    Matrix,
    PrecisionRow,
    RunResult,
    evaluate,
    evaluate_profiles,
    judge_fault,
    judge_precision,
    junit_case,
    profile_levels,
)
from tools.killmatrix.plan import *  # noqa: F403 -- the constants, Subject, RunSpec, subjects, plan
from tools.killmatrix.plan import __all__ as _plan_all
from tools.killmatrix.publish import document_of, document_text, matrix_document, merge_sections, profile_section, render_markdown

__all__ = [
    *_plan_all,
    "FaultRow",
    "Matrix",
    "PrecisionRow",
    "RunResult",
    "document_of",
    "document_text",
    "evaluate",
    "evaluate_profiles",
    "judge_fault",
    "judge_precision",
    "junit_case",
    "main",
    "matrix_document",
    "merge_sections",
    "profile_levels",
    "profile_section",
    "render_markdown",
]
