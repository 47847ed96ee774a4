"""Which columns of a task table hold the sequence, the label, the mask and FLIP's split: looked up the same way in a
CSV header and in a ``datasets`` split (the exact name first, then any case; a name found twice is an error)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .rows import TaskDataError
from .vocabulary import Split

#: Column names looked for when none is given (exact name first, then any case).
SEQUENCE_COLUMNS = ("sequence", "seq")

LABEL_COLUMNS = ("target", "label")

MASK_COLUMNS = ("mask",)


def find_column(header: list[str], wanted: str | None, candidates: tuple[str, ...], path: str | Path) -> int | None:
    """Index of the column ``wanted`` (or of the first of ``candidates``), as every reader here finds it: the
    exact name first, then any case; None if absent (a name matching two columns raises, naming ``path``)."""
    options = (wanted,) if wanted else candidates
    for exact in (True, False):
        for name in options:
            matches = [
                i for i, column in enumerate(header) if (column == name if exact else column.lower() == name.lower())
            ]
            if len(matches) > 1:
                raise TaskDataError(f"{path}: column {name!r} appears twice in the header (columns: {header})")
            if matches:
                return matches[0]
    return None


def required_column(
    header: list[str], wanted: str | None, candidates: tuple[str, ...], path: str | Path, option: str
) -> int:
    index = find_column(header, wanted, candidates, path)
    if index is None:
        options = (wanted,) if wanted else candidates
        raise TaskDataError(
            f"{path}: no column {' or '.join(map(repr, options))} (columns: {', '.join(header)}); "
            f"name the right one with {option}"
        )
    return index


@dataclass(frozen=True)
class TaskColumns:
    """Indices, in a table's header, of the columns a task reads (set/validation: FLIP's split columns)."""

    sequence: int
    label: int
    set: int | None
    validation: int | None


def task_columns(
    header: list[str], sequence_column: str | None, label_column: str | None, source: str | Path
) -> TaskColumns:
    return TaskColumns(
        required_column(header, sequence_column, SEQUENCE_COLUMNS, source, "--sequence_column"),
        required_column(header, label_column, LABEL_COLUMNS, source, "--label_column"),
        find_column(header, None, ("set",), source),
        find_column(header, None, ("validation",), source),
    )


def check_split_column(columns: TaskColumns, split: Split | None, source: str | Path) -> None:
    if split is not None and columns.set is None:
        raise TaskDataError(f"{source}: split={split!r} needs a FLIP 'set' column; this file is a single split")


def table_has_split_column(header: list[str], source: str) -> bool:
    """Whether a table has FLIP's ``set`` column (its rows hold train, validation and test)."""
    return find_column(header, None, ("set",), source) is not None
