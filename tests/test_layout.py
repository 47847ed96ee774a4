"""The package's boundaries, checked on the source: what may import what.

- ``modeling/`` ships to the Hub as remote code: only torch, transformers, the standard library and siblings.
- ``pretraining`` and ``downstream`` are separate runs: neither imports the other.
- ``data/`` is shared by every run and knows nothing of heads or losses (only ``modeling.vocabulary``).
- ``inference`` and ``downstream`` share what they both need through lower homes (``metrics``,
  ``data.tasks``), never through each other.
- No import cycle: between modules (lazy imports inside functions included), nor between the packages and
  top-level modules of ``protconv``.
- One definition per public helper: a name defined at the top level of two modules is two rules that will drift
  (a re-export shim imports, it does not define).
- No function over 60 lines, except a few whose docstring says why they are clearer whole.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

import protconv

PACKAGE = Path(protconv.__file__).parent
REMOTE_CODE_ALLOWED = {"torch", "transformers", "__future__"}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                names.update([module] if node.module else [f"{base}.{alias.name}" for alias in node.names])
            else:
                names.add(node.module or "")
    return names


def modules_of(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """Module -> the protconv modules it imports. ``from .pkg import name`` names a module when ``pkg.name`` is
    one, else the package ``pkg`` (its ``__init__``)."""
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_modules(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]  # ``pkg.name`` where name is an attribute: the package
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def unit_of(module: str) -> str:
    """The package or top-level module of protconv that ``module`` belongs to (``protconv.data``, ``protconv.hub``)."""
    return ".".join(module.split(".")[:2])


def cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                yield from visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


@pytest.mark.parametrize("path", modules_of("modeling"), ids=lambda p: p.name)
def test_modeling_imports_only_torch_transformers_and_siblings(path: Path) -> None:
    for name in imported_modules(path):
        top = name.split(".")[0]
        if name.startswith("protconv."):
            assert name.startswith("protconv.modeling."), f"{path.name} imports {name}"
            assert "." not in name.removeprefix("protconv.modeling."), f"{path.name} imports {name} (not flat)"
        else:
            assert top in REMOTE_CODE_ALLOWED or top in sys.stdlib_module_names, f"{path.name} imports {name}"


@pytest.mark.parametrize(("package", "forbidden"), [("pretraining", "downstream"), ("downstream", "pretraining")])
def test_pretraining_and_downstream_do_not_import_each_other(package: str, forbidden: str) -> None:
    for path in modules_of(package):
        bad = [n for n in imported_modules(path) if n.startswith(f"protconv.{forbidden}")]
        assert not bad, f"{package}/{path.name} imports {bad}"


def test_data_knows_no_heads_or_losses() -> None:
    for path in modules_of("data"):
        from_modeling = {n for n in imported_modules(path) if n.startswith("protconv.modeling")}
        assert from_modeling <= {"protconv.modeling.vocabulary"}, f"data/{path.name} imports {from_modeling}"


def test_import_graph_is_resolved_correctly() -> None:
    """The checker itself: a relative import must resolve to the module it names, or the rules prove nothing."""
    assert "protconv.modeling.vocabulary" in imported_modules(PACKAGE / "data" / "masking.py")
    assert "protconv.modeling.losses" in imported_modules(PACKAGE / "pretraining" / "metrics.py")
    assert "protconv.registry" in imported_modules(PACKAGE / "downstream" / "finetune.py")


def test_inference_and_downstream_do_not_import_each_other() -> None:
    for package, forbidden in (("inference", "downstream"), ("downstream", "inference")):
        for path in modules_of(package):
            bad = [n for n in imported_modules(path) if n.startswith(f"protconv.{forbidden}")]
            assert not bad, f"{package}/{path.name} imports {bad}"


def test_no_import_cycle_between_modules() -> None:
    found = list(cycles(import_graph()))
    assert not found, f"import cycles between modules: {found}"


def test_no_import_cycle_between_packages() -> None:
    """Packages and top-level modules as units: an edge from a parent package to its own child is not an edge."""
    units: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        units[unit_of(module)].update(unit_of(target) for target in targets if unit_of(target) != unit_of(module))
    found = [cycle for cycle in cycles(dict(units)) if "protconv" not in cycle]
    assert not found, f"packages that import each other (directly or round a circle): {found}"


def test_the_cycle_checker_finds_cycles() -> None:
    assert list(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == [["a", "b", "c"]]
    assert not list(cycles({"a": {"b"}, "b": set()}))


def top_level_definitions() -> dict[str, list[str]]:
    """Public function and class name -> the modules that define it at their top level."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, path in all_modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                found[node.name].append(name)
    return found


def test_each_public_helper_is_defined_once() -> None:
    twice = {name: modules for name, modules in top_level_definitions().items() if len(modules) > 1}
    assert not twice, f"defined in more than one module (keep one home, import it elsewhere): {twice}"


#: Functions allowed past the limit: each says in its docstring why it is clearer whole.
LONG_FUNCTIONS: set[str] = set()
MAX_FUNCTION_LINES = 60


def long_functions() -> list[str]:
    found = []
    for name, path in all_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in LONG_FUNCTIONS:
                    found.append(f"{name}.{node.name} ({lines} lines)")
    return found


def test_no_function_over_sixty_lines() -> None:
    assert not long_functions(), f"functions over {MAX_FUNCTION_LINES} lines: {long_functions()}"


def test_inference_and_downstream_do_not_import_evaluation() -> None:
    """``evaluation/`` sits above both (it scores, embeds and trains baselines through them)."""
    for package in ("inference", "downstream"):
        for path in modules_of(package):
            bad = [n for n in imported_modules(path) if n.startswith("protconv.evaluation")]
            assert not bad, f"{package}/{path.name} imports {bad}"
