"""The package's modules import each other without a cycle (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "hetmtl"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(base: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (``base`` is the importing package)."""
    if node.level == 0:
        return node.module or ""
    parts = base.split(".")
    anchor = parts[:len(parts) - node.level + 1]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (never executed)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports when it runs, at any nesting level (functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(package, node)
            # `from pkg import sub` imports the submodule sub when there is one.
            targets = [source, *(f"{source}.{a.name}" for a in node.names)]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_graph_builder_finds_a_planted_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_resolve():
    node = ast.parse("from ..fusion.report import fusion_report").body[0]
    assert _resolve("hetmtl.studies", node) == "hetmtl.fusion.report"
    node = ast.parse("from . import cli").body[0]
    assert _resolve("hetmtl", node) == "hetmtl"


def test_type_checking_imports_are_left_out():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n"
                     "    import b\ndef f():\n    import c\n")
    names = {alias.name for n in _runtime_nodes(tree) if isinstance(n, ast.Import) for alias in n.names}
    assert names == {"b", "c"}


def test_no_import_cycle():
    modules = _modules()
    assert "hetmtl.cli" in modules and "hetmtl.fusion.site_dml" in modules
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph["hetmtl.demo"] >= {"hetmtl.fusion.report"}
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)
