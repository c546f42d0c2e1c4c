"""The reference server is an independent oracle.

If it shared the checker's SSE parser, grammar, schemas or client, one bug would pass
on both sides. Two directions are guarded: the server loads no other ``conformance.*``
module, and no conformance test module imports the server (the suite must reach the
server over HTTP only, like any other target).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import conformance

PACKAGE = Path(conformance.__file__).parent
REFERENCE = PACKAGE / "reference"
SUITE = PACKAGE / "suite"

# A fresh interpreter: import the server, start it, answer a streamed chat (so that
# lazily imported modules load too), and list every conformance module then loaded.
_PROBE = textwrap.dedent(
    """
    import sys
    import httpx
    from conformance.reference import ReferenceServer, ServerConfig

    with ReferenceServer(ServerConfig(token_delay=0)) as srv:
        bot_id = srv.seed_published_bot()
        body = {"bot_id": bot_id, "user_id": "u", "stream": True,
                "additional_messages": [{"role": "user", "content": "hi", "content_type": "text"}]}
        with httpx.stream("POST", srv.url + "/v3/chat", json=body,
                          headers={"Authorization": "Bearer dev-alice-api-key"}) as response:
            assert b"conversation.stream.done" in response.read(), response.status_code
    print("\\n".join(sorted(name for name in sys.modules if name.split(".")[0] == "conformance")))
    """
)


def imported_modules(source: str, module: str) -> set[str]:
    """Absolute names of every module ``source`` imports, anywhere in the file.

    ``module`` is the dotted name of the file, to resolve relative imports;
    ``importlib.import_module("x")`` and ``__import__("x")`` with a literal count too.
    """
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.append("_")  # so the package of __init__.py is the package itself
    return ".".join(parts)


def outside_reference(name: str) -> bool:
    """A conformance module other than the package root and the reference server."""
    parts = name.split(".")
    return parts[0] == "conformance" and len(parts) > 1 and parts[1] != "reference"


def test_fresh_interpreter_loads_no_other_conformance_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, cwd=PACKAGE.parent
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "conformance.reference.server" in loaded  # the probe really ran the server
    assert [name for name in loaded if outside_reference(name)] == []


def test_reference_sources_import_no_other_conformance_module() -> None:
    """Static, so an import inside a rarely run function is caught too."""
    offenders = {
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in sorted(REFERENCE.rglob("*.py"))
        for name in imported_modules(path.read_text("utf-8"), module_name(path))
        if outside_reference(name)
    }
    assert offenders == set()


def test_no_conformance_test_module_imports_the_reference_server() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in sorted(SUITE.rglob("*.py"))
        for name in imported_modules(path.read_text("utf-8"), module_name(path))
        if name == "conformance.reference" or name.startswith("conformance.reference.")
    }
    assert offenders == set()


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        pytest.param("import conformance.oracle.sse", "conformance.reference.x", "conformance.oracle.sse", id="import"),
        pytest.param("from conformance import grammar", "conformance.reference.x", "conformance.oracle.grammar", id="from"),
        pytest.param("from .. import client", "conformance.reference.x", "conformance.transport.client", id="relative-up"),
        pytest.param("from ..schemas import load", "conformance.reference.x", "conformance.oracle.schemas", id="relative-module"),
        pytest.param(
            "def f():\n    import importlib\n    importlib.import_module('conformance.oracle.catalogue')",
            "conformance.reference.x",
            "conformance.oracle.catalogue",
            id="importlib-in-function",
        ),
        pytest.param("from ..reference import server", "conformance.suite.t", "conformance.reference", id="suite-relative"),
    ],
)
def test_the_import_scan_sees_every_form_of_import(source: str, module: str, expected: str) -> None:
    """The guards above would pass vacuously if the scan missed a form of import."""
    assert expected in imported_modules(source, module)


def test_the_guards_know_what_is_outside() -> None:
    assert outside_reference("conformance.oracle.sse")
    assert not outside_reference("conformance")
    assert not outside_reference("conformance.reference.app")
    assert not outside_reference("httpx")
