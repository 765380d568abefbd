"""The shape of the code, checked: module sizes, imports that flow one way with no cycles, packages of at most 12
modules, no job or model state spelled as a string in a comparison. See docs/ARCHITECTURE.md."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGES = ("sam2_tracking", "queues", "ui", "web")
MAX_PY_LINES = 400
MAX_JS_LINES = 300
MAX_MODULES_PER_PACKAGE = 12
# Which top-level packages each may import (app.py may import all): app -> ui/web -> queues -> sam2_tracking.
ALLOWED = {"sam2_tracking": {"sam2_tracking"}, "queues": {"queues", "sam2_tracking"},
           "web": {"web", "queues", "sam2_tracking"}, "ui": {"ui", "web", "queues", "sam2_tracking"}}
FORBIDDEN_IN_DOMAIN = {"gradio", "huey", "fastapi", "starlette"}


def _python_files() -> list[Path]:
    files = [REPO_ROOT / "app.py"]
    for package in PACKAGES:
        files += sorted((REPO_ROOT / package).rglob("*.py"))
    return files


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function, as absolute dotted names."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _python_files()}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def test_no_python_module_over_400_lines_and_no_js_module_over_300():
    long_py = {str(p.relative_to(REPO_ROOT)): n for p in [*_python_files(), *(REPO_ROOT / "tests").rglob("*.py"),
                                                           *(REPO_ROOT / "benchmarks").rglob("*.py")]
               if (n := len(p.read_text().splitlines())) > MAX_PY_LINES}
    assert not long_py, long_py
    long_js = {str(p.relative_to(REPO_ROOT)): n for p in (REPO_ROOT / "web" / "static").rglob("*.js")
               if (n := len(p.read_text().splitlines())) > MAX_JS_LINES}
    assert not long_js, long_js


def test_at_most_12_modules_at_the_top_of_any_package():
    # Our packages and their subpackages only (never a walk through .venv or .cache).
    for package in [p.parent for name in PACKAGES for p in (REPO_ROOT / name).rglob("__init__.py")]:
        modules = [p for p in package.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_MODULES_PER_PACKAGE, (str(package), sorted(p.name for p in modules))


def test_imports_flow_one_way():
    for name, path in ((_module_name(p), p) for p in _python_files()):
        top = name.split(".")[0]
        if top == "app":
            continue
        imported_tops = {m.split(".")[0] for m in _imports(path)}
        if name.startswith("sam2_tracking.testing"):
            continue  # test support drives the whole product (consumers, app, browser); only tests import it
        wrong = (imported_tops & {"app", *PACKAGES}) - ALLOWED[top]
        assert not wrong, f"{name} imports {sorted(wrong)}"
        if top == "sam2_tracking":
            assert not imported_tops & FORBIDDEN_IN_DOMAIN, f"{name} imports {imported_tops & FORBIDDEN_IN_DOMAIN}"


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    # A package's __init__ re-exporting its own modules is not a cycle between modules.
    cycles = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not cycles, cycles


STATE_WORDS = {"queued", "running", "done", "failed", "cancelled", "absent", "downloading", "updating", "ready",
               "removing", "ok", "cancel", "lost"}


def _literal_states(node) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATE_WORDS:
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_literal_states(e) for e in node.elts)) if node.elts else set()
    return set()


def test_no_job_or_model_state_compared_as_a_string_literal():
    found = []
    for path in _python_files():
        if path.name == "states.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                words = set().union(*(_literal_states(n) for n in [node.left, *node.comparators]))
                if words:
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {sorted(words)}")
    assert not found, found
