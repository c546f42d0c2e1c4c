"""Fixtures of the witnesses: real clients, unmodified, run against a server.

``node`` is Node.js for the JavaScript witnesses. A missing or too old Node is a
failure with a clear message, never a skip: a CI run without Node must not pass
these witnesses by not running them.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

#: ``node --import`` (the spec samples' recorder preload) needs 20.6; @coze/api's
#: streaming uses the native fetch of Node >= 18.
NODE_MINIMUM = (20, 6)


@pytest.fixture(scope="session")
def node() -> str:
    """The path of a Node.js >= NODE_MINIMUM."""
    wanted = ".".join(map(str, NODE_MINIMUM))
    path = shutil.which("node")
    if path is None:
        pytest.fail(f"node is not on PATH: the JavaScript witnesses need Node.js >= {wanted}; install it (they never skip)", pytrace=False)
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    found = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if found < NODE_MINIMUM:
        pytest.fail(f"{path} is Node.js {version}: the JavaScript witnesses need >= {wanted}", pytrace=False)
    return path
