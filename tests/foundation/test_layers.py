"""The package's layers and who may import whom, checked by walking every import.

Each module belongs to one layer (the seed architecture: front doors → public API →
services → infrastructure). ``ALLOWED`` is the rule; the test reads every ``import``
in ``src/mixpanel_data`` (module level, inside functions and under ``TYPE_CHECKING``
alike) and fails on any import the table does not allow, and on any import cycle
between the private modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mixpanel_data"

# layer -> the layers its modules may import (its own layer always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),  # exceptions, _version
    "crashpoints": frozenset(),
    "config": frozenset({"base"}),
    "http": frozenset({"base", "config"}),
    "storage": frozenset({"base", "crashpoints", "results"}),
    "results": frozenset({"base"}),
    "services": frozenset({"base", "config", "http", "storage", "results"}),
    "fetch": frozenset({"base", "config", "http", "storage", "results", "services", "crashpoints"}),
    "public": frozenset(
        {"base", "config", "http", "storage", "results", "services", "fetch", "crashpoints"}
    ),
    "cli": frozenset({"base", "public", "emulator", "mcp"}),
    "mcp": frozenset({"base", "public"}),
    "emulator": frozenset(),  # the emulator imports nothing of the client
}


def layer_of(module: str) -> str:
    """The layer a ``mixpanel_data...`` module belongs to."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in {"__init__", "workspace", "auth", "types"}:
        return "public"
    if parts[0] == "__main__":
        return "cli"  # `python -m mixpanel_data` is the CLI
    head = parts[0]
    if head in {"exceptions", "_version"}:
        return "base"
    if head in {"cli", "mcp", "emulator"}:
        return head
    if head == "_internal":
        if len(parts) == 1:
            return "public"  # the package docstring only
        room = parts[1]
        if room == "services" and len(parts) > 2 and parts[2] == "fetch":
            return "fetch"
        if room in {"config", "crashpoints", "http", "storage", "results", "services"}:
            return room
    raise AssertionError(f"{module} is in no layer; add its room to test_layers.py")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every ``mixpanel_data`` module ``path`` imports, wherever the import statement sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mixpanel_data"))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}: use absolute imports")
            if node.module.startswith("mixpanel_data"):
                found.add(node.module)
                # `from pkg import module` imports the submodule itself.
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    if _exists(candidate):
                        found.add(candidate)
    return found


def _exists(module: str) -> bool:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def violations(graph: dict[str, set[str]]) -> list[str]:
    """The imports in ``graph`` (module -> imported modules) that ``ALLOWED`` forbids."""
    bad = []
    for module, targets in sorted(graph.items()):
        src = layer_of(module)
        for target in sorted(targets):
            dst = layer_of(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{module} ({src}) imports {target} ({dst})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles among the modules of ``graph`` (each reported once, from its smallest name)."""
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                key = tuple(sorted(path))
                if key not in seen:
                    seen.add(key)
                    found.append([*path, start])
            elif nxt not in path and nxt > start and nxt in graph:
                visit(start, nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, start, [start])
    return found


def package_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        # A package's own __init__ is imported with any of its modules; not an edge.
        graph[name] = {m for m in imports_of(path) if m != name}
    return graph


def test_every_import_follows_the_layer_rules() -> None:
    assert violations(package_graph()) == []


def test_no_import_cycles_between_private_modules() -> None:
    graph = package_graph()
    private = {
        m: {t for t in targets if t.startswith("mixpanel_data._internal.")}
        for m, targets in graph.items()
        if m.startswith("mixpanel_data._internal.")
    }
    assert cycles(private) == []


def test_at_most_four_modules_stay_directly_in_internal() -> None:
    loose = sorted(p.name for p in (PACKAGE / "_internal").glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 4, loose


def test_every_room_opens_with_a_docstring_of_its_import_rules() -> None:
    for init in sorted((PACKAGE / "_internal").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init} has no docstring"
        assert "import" in doc.lower(), f"{init}'s docstring does not say what it may import"


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("mixpanel_data._internal.storage.engine", "mixpanel_data._internal.http.client"),
        ("mixpanel_data._internal.results.live", "mixpanel_data._internal.storage.engine"),
        ("mixpanel_data.emulator.app", "mixpanel_data.exceptions"),
        ("mixpanel_data.cli.commands.fetch", "mixpanel_data._internal.services.fetch.service"),
        ("mixpanel_data.mcp.server", "mixpanel_data._internal.storage.engine"),
        ("mixpanel_data._internal.http.client", "mixpanel_data.workspace"),
    ],
)
def test_the_checker_flags_a_forbidden_import(module: str, target: str) -> None:
    graph = package_graph()
    graph[module] = graph[module] | {target}
    assert violations(graph) == [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
    ]


def test_the_checker_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
