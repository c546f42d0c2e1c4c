"""``python -m tools.profiles``: print, write or check docs/profiles.md."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.profiles.page import ProfileInfo, load_topics, render

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "docs" / "profiles.md"
COMMAND = "python -m tools.profiles --write"


def current() -> str:
    """The page the catalogue and the profiles give today."""
    from conformance.oracle.catalogue import load_catalogue
    from conformance.oracle.profile import available_profiles, load_profile

    profiles = []
    for name in available_profiles():
        p = load_profile(name)
        profiles.append(ProfileInfo(p.name, p.description, {e.name: f"{e.method} {e.path}" for e in p.endpoints}))
    return render(load_catalogue().values(), profiles, load_topics())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.profiles", description="The profiles' requirements side by side.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help=f"exit 1 when the committed {PAGE.relative_to(ROOT)} is stale")
    args = parser.parse_args(argv)
    fresh = current()
    rel = str(PAGE.relative_to(ROOT))
    if args.write:
        PAGE.write_text(fresh, encoding="utf-8")
        print(f"wrote {rel}")
        return 0
    if not args.check:
        sys.stdout.write(fresh)
        return 0
    old = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    if old == fresh:
        print(f"{rel} is up to date")
        return 0
    diff = list(difflib.unified_diff(old.splitlines(), fresh.splitlines(), f"{rel} (committed)", f"{rel} (catalogue)", lineterm=""))
    print("\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else ""))
    print(f"{rel} is stale: the catalogue or the profiles changed; regenerate it with `{COMMAND}`")
    return 1
