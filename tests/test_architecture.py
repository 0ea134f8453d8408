"""The layering contract: imports run down the layers, never up, counting imports inside functions.

core (``opendance/`` without ``opendance.commands``) <- kernels <- exporters <- engine <-
training and bridges (bridges: core and the motion formats only) <- realtime <- the commands.
Test tooling (``tests/support``) is not part of any runtime package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernels", "exporters", "engine", "training", "bridges", "realtime")

#: For each layer, the layers its modules may import (itself included).
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "kernels": {"core", "kernels"},
    "exporters": {"core", "kernels", "exporters"},
    "engine": {"core", "kernels", "exporters", "engine"},
    "training": {"core", "kernels", "exporters", "engine", "training"},
    "bridges": {"core", "exporters", "bridges"},
    "realtime": {"core", "kernels", "exporters", "engine", "training", "bridges", "realtime"},
    "commands": {"core", "kernels", "exporters", "engine", "training", "bridges", "realtime", "commands"},
}


def module_name(path: Path) -> str:
    """``engine/music/features.py`` -> ``opendance.engine.music.features``."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if parts[0] == "opendance":
        parts = parts[1:]
    return ".".join(["opendance", *parts])


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "opendance":
        return None
    if len(parts) == 1:
        return "core"
    if parts[1] in PACKAGES:
        return parts[1]
    if parts[1] in ("commands", "__main__"):
        return "commands"
    return "core"


def runtime_files() -> list[Path]:
    files = sorted((ROOT / "opendance").rglob("*.py"))
    for pkg in PACKAGES:
        files += sorted((ROOT / pkg).rglob("*.py"))
    return files


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """Every import in the file (module level and inside functions): (line, dotted target)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_pkg else node.level
                base = base[: len(base) - drop] if drop else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            # ``from opendance.engine import stream`` imports the submodule too.
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return out


def import_graph() -> dict[str, set[str]]:
    known = {module_name(p) for p in runtime_files()}
    graph: dict[str, set[str]] = {}
    for path in runtime_files():
        mod = module_name(path)
        graph[mod] = {t for _, t in imported_modules(path, mod) if t in known and t != mod}
    return graph


def test_imports_run_down_the_layers():
    violations = []
    for path in runtime_files():
        mod = module_name(path)
        src = layer_of(mod)
        for line, target in imported_modules(path, mod):
            dst = layer_of(target)
            if dst is not None and dst not in ALLOWED[src]:
                violations.append(f"{path.relative_to(ROOT)}:{line}: {src} imports {dst} ({target})")
            if target.split(".")[0] in ("tests", "support", "conftest"):
                violations.append(f"{path.relative_to(ROOT)}:{line}: runtime imports test tooling ({target})")
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_packages_form_no_cycle():
    edges: dict[str, set[str]] = {}
    for mod, targets in import_graph().items():
        for t in targets:
            a, b = layer_of(mod), layer_of(t)
            if a != b:
                edges.setdefault(a, set()).add(b)
    # Depth-first search for a back edge.
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                pytest.fail("package import cycle: " + " -> ".join([*trail, n, m]))
            if m not in state:
                visit(m, [*trail, n])
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n, [])


def test_modules_form_no_cycle():
    """No two modules import each other, directly or through others (function-level imports count)."""
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    # A package's __init__ re-exporting its own modules is not a cycle of concern.
    cycles = [c for c in cycles if not all(m.startswith(c[0]) for m in c)]
    assert not cycles, "module import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_runtime_packages_hold_no_test_tooling():
    names = {p.stem for p in runtime_files()}
    assert not names & {"faults", "virtual_mic", "beat_eval", "host_check"}
