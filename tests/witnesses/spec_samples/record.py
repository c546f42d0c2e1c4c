"""Run a spec sample with a recording ``print``: ``python record.py SAMPLE.py``.

The sample runs as ``__main__`` (runpy) with ``print`` in its globals replaced by one that
records each call -- its arguments and ``end`` -- and then prints as usual. When it ends,
the calls, and the traceback if it raised, are written as JSON to the file named by
WITNESS_RECORD; the exit code is 1 if the sample raised.
"""

from __future__ import annotations

import builtins
import json
import os
import runpy
import sys
import traceback
from typing import Any

calls: list[dict[str, Any]] = []


def recording_print(*args: Any, sep: str = " ", end: str = "\n", file: Any = None, flush: bool = False) -> None:
    calls.append({"fn": "print", "args": [arg if isinstance(arg, str) else repr(arg) for arg in args], "end": end})
    builtins.print(*args, sep=sep, end=end, file=file, flush=flush)


def main(sample: str) -> int:
    error = None
    try:
        runpy.run_path(sample, init_globals={"print": recording_print}, run_name="__main__")
    except BaseException:  # the sample's own failure is the record's subject
        error = traceback.format_exc()
        sys.stderr.write(error)
    with open(os.environ["WITNESS_RECORD"], "w", encoding="utf-8") as out:
        json.dump({"exit_code": 0 if error is None else 1, "calls": calls, "error": error}, out, ensure_ascii=False)
    return 0 if error is None else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
