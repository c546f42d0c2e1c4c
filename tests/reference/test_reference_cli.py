"""``python -m conformance.reference`` serves a real stream to the README's ``curl -N`` line."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import conformance.reference

README = Path(conformance.reference.__file__).parent / "README.md"
README_PORT = 8080
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def readme_curl_line() -> str:
    lines = [line for line in README.read_text("utf-8").splitlines() if line.startswith("curl -N ")]
    assert len(lines) == 1, "the README should hold exactly one curl -N line"
    return lines[0]


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], list[str], int]]:
    """The module running on a free port, and the lines it printed up to the curl line."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.reference", "--port", str(port), "--token-delay", "0.005"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    printed: list[str] = []
    try:
        for line in process.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C"):
                break
        assert printed and printed[-1].startswith("Ctrl-C"), process.stderr.read()
        yield process, printed, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()
        process.stderr.close()


@needs_curl
def test_the_readme_curl_line_streams_a_chat(served: tuple[subprocess.Popen[str], list[str], int]) -> None:
    process, printed, port = served
    printed_curl = next(line for line in printed if line.startswith("curl -N "))
    # The README line is the printed one for the default port.
    assert readme_curl_line() == printed_curl.replace(f":{port}/", f":{README_PORT}/")
    result = subprocess.run(
        readme_curl_line().replace(f":{README_PORT}/", f":{port}/"),
        shell=True,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout.decode("utf-8")
    events = re.findall(r"^event: (\S+)$", output, flags=re.MULTILINE)
    assert events[:2] == ["conversation.chat.created", "conversation.chat.in_progress"]
    assert events.count("conversation.message.delta") >= 5
    assert events[-3:] == ["conversation.message.completed", "conversation.chat.completed", "conversation.stream.done"]
    assert "你好,请介绍一下你自己" in output  # the fake model quotes the question


def test_the_banner_names_the_bot_and_the_credentials(served: tuple[subprocess.Popen[str], list[str], int]) -> None:
    process, printed, port = served
    text = "\n".join(printed)
    assert f"http://127.0.0.1:{port}" in text
    assert "7493710240598375123" in text
    for secret in ("dev-alice-api-key", "dev-alice-session-key", "dev-bob-api-key", "dev-bob-session-key"):
        assert secret in text  # documented development credentials, printed on purpose
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0


def test_sigterm_stops_it_cleanly(served: tuple[subprocess.Popen[str], list[str], int]) -> None:
    process, _, _ = served
    process.terminate()
    assert process.wait(10) == 0


def test_a_bad_port_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance.reference", "--port", "70000"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "ServerConfig.port" in result.stderr
