"""Each profile against the other dialect: ``--profile coze --dialect doc`` and
``--profile doc --dialect coze`` fail on exactly the requirement ids committed in
docs/cross-dialect.json (tests/test_cross_dialect.py checks it).

    python -m tests.support.cross_dialect            # print what the runs fail now
    python -m tests.support.cross_dialect --write    # commit it to docs/cross-dialect.json

Why these runs matter: a profile is only useful if it tells a server of the other
dialect something precise. Both runs are serial, with a fixed Hypothesis seed, so the
failing set is the same from run to run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "cross-dialect.json"
#: (profile, dialect of the embedded reference server)
PAIRS = (("coze", "doc"), ("doc", "coze"))
SUITE_ARGS = ("-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--fuzz-examples", "2", "--hypothesis-seed", "0")


def run(profile: str, dialect: str) -> dict[str, Any]:
    """One suite run: its exit code, verdict, and the requirement ids that FAILed."""
    with tempfile.TemporaryDirectory() as reports:
        args = [sys.executable, "-m", "pytest", "conformance", "--profile", profile, "--dialect", dialect]
        done = subprocess.run([*args, *SUITE_ARGS, "--report-dir", reports], cwd=ROOT, capture_output=True, text=True, timeout=600)
        results = json.loads((Path(reports) / "results.json").read_text(encoding="utf-8"))
    failed = sorted(r["id"] for r in results["requirements"] if r["outcome"] == "FAIL")
    return {"profile": profile, "dialect": dialect, "exit_code": done.returncode, "verdict": results["verdict"]["status"], "failed": failed}


def current() -> list[dict[str, Any]]:
    return [run(profile, dialect) for profile, dialect in PAIRS]


def main(argv: list[str]) -> int:
    runs = current()
    text = json.dumps({"runs": runs}, indent=2, ensure_ascii=False) + "\n"
    if "--write" in argv:
        COMMITTED.write_text(text, encoding="utf-8")
        print(f"wrote {COMMITTED.relative_to(ROOT)}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
