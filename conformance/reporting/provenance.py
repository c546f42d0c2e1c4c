"""Where a result came from: the suite's name, version and commit, and the effective
options of a run (never a secret)."""

from __future__ import annotations

import dataclasses
import functools
import shutil
import subprocess
from typing import Any

from conformance.reporting.baseline import PACKAGE_DIR
from conformance.settings import SECRET_DESTS, Settings

__all__ = ["SUITE_NAME", "effective_options", "suite_provenance"]

SUITE_NAME = "coze-plus-conformance"


@functools.cache
def suite_provenance() -> dict[str, Any]:
    """Name, version and -- in a git checkout -- commit of the suite that ran."""
    import importlib.metadata

    import conformance

    try:
        version = importlib.metadata.version(SUITE_NAME)
    except importlib.metadata.PackageNotFoundError:
        version = conformance.__version__
    commit: str | None = None
    dirty: bool | None = None
    repo = PACKAGE_DIR.parent
    if (repo / ".git").exists() and shutil.which("git"):
        try:
            git = ["git", "-C", str(repo)]
            commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True).stdout.strip()
            # Local edits to the checks or the schemas make the commit an incomplete description.
            changed = subprocess.run(
                [*git, "status", "--porcelain", "--untracked-files=no", "--", "conformance", "schemas"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout
            dirty = bool(changed.strip())
        except (OSError, subprocess.SubprocessError):
            commit = dirty = None
    return {"name": SUITE_NAME, "version": version, "commit": commit or None, "dirty": dirty}


def effective_options(settings: Settings) -> dict[str, Any]:
    """The resolved settings as plain data: secrets as ``"<set>"``, extra headers by
    name only (gateway headers often carry tokens) -- the same policy as ``repr``."""
    shown: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name == "sources":
            continue
        if f.name in SECRET_DESTS:
            value = "<set>" if value else None
        elif f.name == "headers":
            value = [name for name, _ in value]
        elif isinstance(value, tuple):
            value = list(value)
        shown[f.name] = value
    return shown
