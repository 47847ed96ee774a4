"""FLIP's split marks: a ``set`` (train/test) and a ``validation`` flag, as columns of a table or as ``SET=`` and
``VALIDATION=`` fields of a per-residue FASTA header. A row whose marks name no split is a bad row of every split
read."""

from __future__ import annotations

from .columns import TaskColumns
from .rows import Fields, LabelledSequences, TaskDataError
from .vocabulary import BadRowPolicy, Split

#: FLIP ``validation`` values, compared after stripping and lower-casing. Empty (and NA/NaN, as R and pandas
#: write a missing value) means "not a validation row", which is how FLIP files mark ordinary training rows.
_TRUE = frozenset({"true", "t", "yes", "y", "1"})

_FALSE = frozenset({"false", "f", "no", "n", "0", "", "na", "nan", "none"})

_SETS = ("train", "test")


def _flag(value: str) -> bool | None:
    text = value.strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def in_flip_split(
    fields: Fields,
    columns: TaskColumns,
    split: Split,
    where: str,
    data: LabelledSequences,
    on_bad_row: BadRowPolicy,
) -> bool:
    """Whether a row of a FLIP table belongs to ``split`` (its ``set``/``validation`` columns); a row whose columns
    name no split is rejected under ``on_bad_row`` and belongs to none."""
    if columns.set is None:  # not reached: check_split_column refuses a split of such a table first
        raise TaskDataError(f"{where}: split={split!r} needs a FLIP 'set' column")
    validation = fields[columns.validation] if columns.validation is not None else ""
    side, problem = _flip_side(fields[columns.set], validation)
    if problem is not None:
        data.reject(f"{where}: {problem}", on_bad_row)
        return False
    return side == split


def _flip_side(set_value: str, validation: str) -> tuple[Split | None, str | None]:
    """FLIP: ``set`` is train/test; training rows with ``validation`` true form the validation split.

    Returns the split, or None and the reason the row belongs to no split.
    """
    side = set_value.strip().lower()
    if side not in _SETS:
        return None, f"unexpected set value {set_value!r} (expected train or test, any case)"
    if side == "test":
        return "test", None
    flag = _flag(validation)
    if flag is None:
        return None, f"unexpected validation value {validation!r} (expected True/False, 1/0, yes/no or empty)"
    return ("valid" if flag else "train"), None


def header_fields(header: str) -> dict[str, str]:
    """``1es5-A SET=train VALIDATION=False`` -> {"SET": "train", "VALIDATION": "False"} (keys upper-cased)."""
    return {key.upper(): value for key, _, value in (item.partition("=") for item in header.split()[1:] if "=" in item)}


def header_side(fields: dict[str, str]) -> tuple[Split | None, str | None]:
    if "SET" not in fields:
        return None, "no SET= field in the header"
    side = fields["SET"].strip().lower()
    if side not in _SETS:
        return None, f"unexpected SET value {fields['SET']!r} (expected train or test, any case)"
    if side == "test":
        return "test", None
    validation = fields.get("VALIDATION", "")
    flag = _flag(validation)
    if flag is None:
        return None, f"unexpected VALIDATION value {validation!r} (expected True or False)"
    return ("valid" if flag else "train"), None
