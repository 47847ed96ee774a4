"""Per-family copies stay in sync: the transformers ``# Copied from`` convention, checked.

``src/protconv/modeling/`` ships to the Hub as remote code, one self-contained unit per family, so a few small
blocks (the task-model base class, the head classes, the registration table) are written once per family. Each
copy carries, on the line above it::

    # Copied from protconv.modeling.modeling_conv.ConvTaskModel with Conv->Performer, conv->performer

and this test fails when the copy no longer equals its original after the listed replacements (applied in
order, as transformers' ``utils/check_copies.py`` does). Fix by editing the original and re-copying.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

MODELING = Path(__file__).resolve().parents[2] / "src" / "protconv" / "modeling"
MARKER = re.compile(r"^# Copied from protconv\.modeling\.(?P<module>\w+)\.(?P<name>\w+)(?: with (?P<subs>.+))?$")


@dataclass(frozen=True)
class Copy:
    """One marked copy: where it is, what it copies and the replacements that turn the original into it."""

    path: Path
    line: int
    module: str
    name: str
    replacements: tuple[tuple[str, str], ...]


def _top_level_blocks(source: str) -> dict[str, tuple[int, str]]:
    """Name -> (first line, source text) of every top-level class, function and single-name assignment."""
    lines = source.splitlines()
    blocks = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            name = node.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        else:
            continue
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        assert node.end_lineno is not None
        blocks[name] = (first, "\n".join(lines[first - 1 : node.end_lineno]))
    return blocks


def _replacements(text: str | None, where: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in (text or "").split(","):
        if part.strip():
            old, arrow, new = part.strip().partition("->")
            assert arrow and old and new, f"{where}: malformed replacement {part.strip()!r} (expected Old->New)"
            pairs.append((old, new))
    return tuple(pairs)


def marked_copies(directory: Path = MODELING) -> list[Copy]:
    copies = []
    for path in sorted(directory.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = MARKER.match(line.strip())
            if match:
                where = f"{path.name}:{number}"
                subs = _replacements(match["subs"], where)
                copies.append(Copy(path, number, match["module"], match["name"], subs))
    return copies


def out_of_sync(copy: Copy, directory: Path = MODELING) -> str | None:
    """Why ``copy`` differs from its original (``None`` if it does not)."""
    where = f"{copy.path.name}:{copy.line}"
    original_path = directory / f"{copy.module}.py"
    if not original_path.is_file():
        return f"{where}: no module {copy.module}"
    originals = _top_level_blocks(original_path.read_text())
    if copy.name not in originals:
        return f"{where}: {copy.module} defines no top-level {copy.name}"
    expected = originals[copy.name][1]
    for old, new in copy.replacements:
        expected = expected.replace(old, new)
    copies = {first: text for first, text in _top_level_blocks(copy.path.read_text()).values()}
    actual = copies.get(copy.line + 1)
    if actual is None:
        return f"{where}: the marker is not directly above a top-level class, function or assignment"
    if actual != expected:
        return f"{where}: differs from {copy.module}.{copy.name} with {copy.replacements}"
    return None


def test_every_copy_equals_its_original() -> None:
    problems = [problem for copy in marked_copies() if (problem := out_of_sync(copy)) is not None]
    assert not problems, "\n".join(problems)


def test_the_per_family_blocks_are_marked() -> None:
    """The blocks the duplicate scan finds in both families are the marked ones (a new family copies them too)."""
    marked = {(copy.path.name, copy.name) for copy in marked_copies()}
    for name in ["TaskModel", "ForPreTraining", "ForSequenceClassification", "ForTokenClassification"]:
        assert ("modeling_performer.py", f"Conv{name}") in marked, name
    assert ("modeling_performer.py", "CONV_MODEL_CLASSES") in marked


@pytest.fixture
def two_families(tmp_path: Path) -> Path:
    (tmp_path / "modeling_a.py").write_text('class ATask:\n    """The A backbone (self.a)."""\n\n    x = 1\n')
    (tmp_path / "modeling_b.py").write_text(
        "import os\n\n\n# Copied from protconv.modeling.modeling_a.ATask with A->B, self.a->self.b\n"
        'class BTask:\n    """The B backbone (self.b)."""\n\n    x = 1\n'
    )
    return tmp_path


def test_a_faithful_copy_passes(two_families: Path) -> None:
    (copy,) = marked_copies(two_families)
    assert copy.replacements == (("A", "B"), ("self.a", "self.b")) and out_of_sync(copy, two_families) is None


def test_an_edited_copy_is_named(two_families: Path) -> None:
    path = two_families / "modeling_b.py"
    path.write_text(path.read_text().replace("x = 1", "x = 2"))
    (copy,) = marked_copies(two_families)
    assert out_of_sync(copy, two_families) == "modeling_b.py:4: differs from modeling_a.ATask with " + str(
        copy.replacements
    )


def test_a_marker_to_nothing_is_named(two_families: Path) -> None:
    path = two_families / "modeling_b.py"
    path.write_text(path.read_text().replace("modeling_a.ATask", "modeling_a.Missing"))
    (copy,) = marked_copies(two_families)
    assert out_of_sync(copy, two_families) == "modeling_b.py:4: modeling_a defines no top-level Missing"
