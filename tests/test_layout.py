"""The package's layout: every module imports, no import circle, one address per name.

The import graph is read from the source (every ``import`` statement, also those inside
functions), so a circle hidden behind a lazy import counts too. See CONTRIBUTING.md, "Layout".
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "mammoseg"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_modules(name: str) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import of a mammoseg module."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mammoseg":
                    found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "mammoseg":
                continue
            plain = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, [], node.lineno))
                else:
                    plain.append(alias.name)
            if plain:
                found.append((base, plain, node.lineno))
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        targets = {target for target, _, _ in imported_modules(name)}
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        for target in list(targets):
            parts = target.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts)))
        targets.discard(name)
        # A package's __init__ runs before its submodules, and a submodule may be reached
        # through its own package (`from mammoseg.data import records`): not a circle.
        graph[name] = {t for t in targets if t in MODULES and not name.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_reports_a_hand_made_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    assert importlib.import_module(name).__name__ == name


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_module_imports_a_private_name_of_another():
    offenders = []
    for name in MODULES:
        for target, names, line in imported_modules(name):
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private and target != name:
                offenders.append(f"{MODULES[name].name}:{line} takes {private} from {target}")
    assert not offenders, "\n".join(offenders)


def test_no_re_export_outside_package_inits():
    # A name imported by a module and never used there is a re-export; ruff flags it (F401)
    # unless silenced, so a silenced F401 outside an __init__ is one.
    offenders = [
        f"{path.relative_to(PACKAGE_ROOT.parent)}:{number}"
        for name, path in MODULES.items()
        if path.name != "__init__.py"
        for number, text in enumerate(path.read_text().splitlines(), 1)
        if "noqa" in text and "F401" in text
    ]
    assert not offenders, "re-exports outside __init__.py: " + ", ".join(offenders)


def test_public_names_of_package_inits_have_one_home():
    # Each name that a package's __init__ offers is defined in exactly one module of mammoseg.
    homes: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                homes.setdefault(node.name, []).append(name)
    twice = {n: m for n, m in homes.items() if len(m) > 1 and not n.startswith("_")}
    allowed = {"main", "get_config", "call", "build", "compute_output_shape", "from_config"}
    twice = {n: m for n, m in twice.items() if n not in allowed}
    assert not twice, f"public names defined in more than one module: {twice}"


def test_every_package_docstring_maps_its_modules():
    # A newcomer opening a package's __init__ finds every module and subpackage named there.
    import re

    missing = []
    for name, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        words = set(re.findall(r"\w+", ast.get_docstring(ast.parse(path.read_text())) or ""))
        children = {
            child.stem if child.is_file() else child.name
            for child in path.parent.iterdir()
            if (child.suffix == ".py" and child.name != "__init__.py")
            or (child.is_dir() and (child / "__init__.py").exists())
        }
        missing += [f"{name}: {child}" for child in sorted(children - words)]
    assert not missing, "modules missing from their package's docstring: " + ", ".join(missing)
