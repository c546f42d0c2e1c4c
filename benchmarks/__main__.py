"""Every benchmark, one command: ``python -m benchmarks`` (issue #15, item 6).

Runs the SSE checker against httpx-sse (``benchmarks.checker``), the reference
server against bare Starlette + uvicorn, with the 500-stream load and the Hypothesis
rate (``benchmarks.server``), and whole certification runs against their floor
(``benchmarks.certify``), each with its defaults; about four to five minutes on two
cores. Every figure is a ratio measured in the same run; the exit status is 1 if a
benchmark's correctness check failed (a lost event, a missed finding), never for a
speed.
"""

from __future__ import annotations

import sys
import time

from benchmarks import certify, checker, server


def main() -> int:
    status = 0
    for name, run in (("checker", checker.main), ("server", server.main), ("certify", certify.main)):
        print(f"== python -m benchmarks.{name}", flush=True)
        t0 = time.monotonic()
        status |= run([])
        print(f"== {name}: {time.monotonic() - t0:.0f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
