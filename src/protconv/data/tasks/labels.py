"""Labels of downstream tasks: one label parsed from its text, ``--classes``, and class names turned into ids over
all splits at once (so every split shares one numbering, which ``config.id2label`` then carries)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .rows import LabelledSequences, TaskDataError
from .vocabulary import BadRowPolicy, LabelKind, Split, TaskType


def task_label_kind(task: TaskType) -> LabelKind:
    """Regression reads numbers; classification keeps labels as written (names or ids) for ``assign_class_ids``."""
    return "float" if task == "regression" else "class"


def parse_label(raw: str, kind: LabelKind) -> tuple[float | int | str | None, str | None]:
    """The parsed label, or None and what is wrong with it. Integral floats ("3.0", as pandas writes an int
    column holding a missing value) are accepted as class ids; a ``"class"`` label is kept as written (a name
    or an id, see :func:`assign_class_ids`), but ``nan``/``inf`` are missing values there too."""
    try:
        value = float(raw)
    except ValueError:
        if kind == "class":
            return raw, None
        return None, f"label {raw!r} is not a valid {kind}"
    if not math.isfinite(value):
        return None, f"label {raw!r} is not a finite number"
    if kind == "float":
        return value, None
    if kind == "class":
        return raw, None
    try:
        return int(raw), None
    except ValueError:
        if value.is_integer():
            return int(value), None
        return None, f"label {raw!r} is not a valid int"


def parse_classes(text: str, per_residue: bool) -> list[str]:
    """``--classes``: names in id order. Comma-separated (``stable,unstable``); for per-residue tasks a run of
    one-character names may also be written together (``CHE``). Names must be unique."""
    if "," in text:
        names = [name.strip() for name in text.split(",")]
    elif per_residue:
        names = list(text.strip())
    else:
        names = [text.strip()]
    if any(not name for name in names):
        raise TaskDataError(f"--classes {text!r}: an empty class name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TaskDataError(f"--classes {text!r}: {', '.join(map(repr, repeated))} given twice")
    if per_residue and any(len(name) != 1 for name in names):
        raise TaskDataError(f"--classes {text!r}: per-residue labels are single characters, e.g. CHE or C,H,E")
    if not per_residue and len(names) < 2:
        raise TaskDataError(f"--classes {text!r}: give at least two class names, separated by commas")
    return names


def assign_class_ids(
    splits: Mapping[Split, LabelledSequences],
    classes: Sequence[str] | None = None,
    num_labels: int | None = None,
    on_bad_row: BadRowPolicy = "error",
) -> list[str]:
    """Turn the labels of every split (read with ``label_kind="class"``) into class ids, in place; returns the
    class names in id order.

    With ``classes``, a label that is one of the names gets its index, else an integer label within range is
    taken as the id; any other label is a bad row. Without, integer labels (``3``, ``3.0``) are ids, named by
    their digits (``"0"``, ``"1"``, ...; ``num_labels`` of them, default the largest + 1), and any other
    labels are names, numbered in sorted order over all splits so that every split shares one numbering.
    A ``num_labels`` that does not fit the classes found is an error.
    """
    raw = [label for data in splits.values() for label in data.labels]
    if classes is not None:
        names = list(classes)
    elif (numbers := _class_ids_of_all(raw)) is not None:
        largest = max(numbers, default=-1)
        names = [str(i) for i in range(max(largest + 1, num_labels or 0))]
    else:
        names = sorted({str(label) for label in raw})
    if num_labels is not None and num_labels != len(names):
        raise TaskDataError(
            f"--num_labels {num_labels} does not fit the {len(names)} classes of the data "
            f"({_shorten(names)}); leave it out, or name the classes with --classes"
        )
    ids = {name: index for index, name in enumerate(names)}
    for data in splits.values():
        _apply_class_ids(data, ids, on_bad_row)
    return names


def _class_id(label: object) -> int | None:
    """``label`` as a class id (a non-negative integer, possibly written ``3.0``), else None."""
    value, problem = parse_label(str(label), "int")
    return value if problem is None and isinstance(value, int) and value >= 0 else None


def _class_ids_of_all(labels: Iterable[object]) -> list[int] | None:
    """Every label as a class id, or None as soon as one is not an id."""
    numbers = []
    for label in labels:
        number = _class_id(label)
        if number is None:
            return None
        numbers.append(number)
    return numbers


def _apply_class_ids(data: LabelledSequences, ids: Mapping[str, int], on_bad_row: BadRowPolicy) -> None:
    kept = LabelledSequences(skipped=data.skipped)
    for sequence, label, where in zip(data.sequences, data.labels, data.names, strict=True):
        index = ids.get(str(label))
        if index is None:
            number = _class_id(label)
            index = number if number is not None and number < len(ids) else None
        if index is None:
            kept.reject(f"{where}: label {label!r} is not one of the classes ({_shorten(list(ids))})", on_bad_row)
            continue
        kept.add(sequence, index, where)
    data.sequences, data.labels, data.names = kept.sequences, kept.labels, kept.names


def _shorten(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
