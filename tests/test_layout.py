"""The package's boundaries, checked on the source: what may import what.

- ``modeling/`` ships to the Hub as remote code: only torch, transformers, the standard library and siblings.
- ``pretraining`` and ``downstream`` are separate runs: neither imports the other.
- ``data/`` is shared by every run and knows nothing of heads or losses (only ``modeling.vocabulary``).
"""

from __future__ import annotations

import ast
import sys
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
    return sorted((PACKAGE / subpackage).glob("*.py"))


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
