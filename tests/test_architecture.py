"""The package's architecture, as tests: the boundaries docs/architecture.md draws.

* The reference server is an independent oracle: if it shared the checker's SSE
  parser, grammar, schemas or client, one bug would pass on both sides. Two
  directions are guarded: ``conformance.reference`` imports nothing from
  ``conformance.oracle``, ``transport``, ``run`` or ``reporting`` (nor any other
  ``conformance`` module), and no conformance test module imports the server (the
  suite reaches it over HTTP only, like any other target).
* No import cycles anywhere in ``conformance/`` (``if TYPE_CHECKING:`` imports
  included): each package may import only those below it.
* The maintainer's tools stay out of the package: nothing in it edits ``sys.path``
  or imports ``tools``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Callable
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


def imports_in(folder: Path, wanted: Callable[[str], bool]) -> set[str]:
    """"file: module" for every import of a module ``wanted`` in the files below ``folder``."""
    return {
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in sorted(folder.rglob("*.py"))
        for name in imported_modules(path.read_text("utf-8"), module_name(path))
        if wanted(name)
    }


def within(package: str) -> Callable[[str], bool]:
    return lambda name: name == package or name.startswith(package + ".")


@pytest.mark.parametrize("layer", ["oracle", "transport", "run", "reporting"])
def test_the_reference_server_imports_nothing_of_the_checking_side(layer: str) -> None:
    assert imports_in(REFERENCE, within(f"conformance.{layer}")) == set()


def test_reference_sources_import_no_other_conformance_module() -> None:
    """Static, so an import inside a rarely run function is caught too."""
    assert imports_in(REFERENCE, outside_reference) == set()


def test_no_conformance_test_module_imports_the_reference_server() -> None:
    assert imports_in(SUITE, within("conformance.reference")) == set()


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        pytest.param("import conformance.oracle.sse", "conformance.reference.x", "conformance.oracle.sse", id="import"),
        pytest.param("from conformance.oracle import grammar", "conformance.reference.x", "conformance.oracle.grammar", id="from"),
        pytest.param("from .. import keys", "conformance.reference.x", "conformance.keys", id="relative-up"),
        pytest.param("from ..oracle.schemas import load", "conformance.reference.x", "conformance.oracle.schemas", id="relative-module"),
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


# --------------------------------------------------------------------------- import cycles


def import_graph() -> dict[str, set[str]]:
    """Module -> the conformance modules it imports (an import of a module's own
    package is no edge: Python initialises a package before its modules anyway)."""
    modules = {module_name(p).removesuffix("._"): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = imported_modules(path.read_text("utf-8"), module_name(path))
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "conformance.plugin" in graph and graph["conformance.plugin"]  # the scan saw the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_edits_no_sys_path_and_imports_no_maintainer_tool() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "sys.path" in path.read_text("utf-8")
        or any(n == "tools" or n.startswith("tools.") for n in imported_modules(path.read_text("utf-8"), module_name(path)))
    ]
    assert offenders == []
