"""State shared by every process of one run (the controller and all xdist workers).

xdist workers are separate processes; what must exist once per run -- the run id, the
published bot the read-only tests share, the count of bots created -- lives in a JSON
file under pytest's base temp dir, guarded by a file lock (pytest-xdist's documented
recipe for session-scoped fixtures shared across workers).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock


class SharedState:
    """A small JSON document shared across processes of one run."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "conformance-shared.json"
        self.lock = FileLock(str(self.path) + ".lock")

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.path)

    def get_or_create(self, key: str, factory: Callable[[], Any]) -> Any:
        """The value under ``key``, made by ``factory`` in exactly one process.

        A factory that raises stores nothing: the next caller tries again, so one
        worker's transport hiccup does not poison the whole run."""
        with self.lock:
            data = self._read()
            if key not in data:
                data[key] = factory()
                self._write(data)
            return data[key]

    def increment(self, key: str, limit: int | None = None) -> int:
        """Add one to a counter and return it; refuse (ValueError) beyond ``limit``."""
        with self.lock:
            data = self._read()
            value = int(data.get(key, 0)) + 1
            if limit is not None and value > limit:
                raise ValueError(f"{key}: limit of {limit} reached")
            data[key] = value
            self._write(data)
            return value

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            return self._read().get(key, default)
