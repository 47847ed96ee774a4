"""Downstream task data: per-protein labels from CSV (TAPE, FLIP) and per-residue labels from FASTA triples (FLIP).

Every loader returns a ``LabelledSequences`` whose rows the fine-tuning path and the supervised baselines share,
so both see exactly the same split. Bad rows (missing or non-finite label, empty or invalid sequence, a wrong
number of fields, an unexpected FLIP ``set``/``validation`` value, labels whose length differs from the
sequence) are reported with file and line; ``on_bad_row="skip"`` skips them and keeps the messages in
``skipped`` (:func:`report_skipped` formats them for the user), ``"error"`` raises at the first one. A problem
with the file as a whole (empty, header only, missing or repeated columns, bad bytes, a duplicated FASTA id)
always raises :class:`TaskDataError` naming the file.

Tables already in memory (the columns of a Hugging Face ``datasets`` split: Parquet, JSON, CSV or a Hub dataset)
go through the same row checks with :func:`read_table_task` and :func:`read_residue_table`; their rows are named
``NAME (SPLIT) row N`` (0-based, as ``dataset[N]``). Class labels may be names (``label_kind="class"``):
:func:`assign_class_ids` turns them into ids over all splits at once, so every split shares one numbering.

CSV files are read by :func:`protconv.data.tables.read_table`, the one table dialect of every command (UTF-8 with
or without a byte order mark, comma, tab or ``;``, gzip, CRLF, quoted fields with line breaks; rows are named by
their first line).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..modeling.vocabulary import IGNORE_INDEX
from ..tokenization.validation import InvalidSequenceError, UnknownPolicy, clean_sequence
from .fasta import FastaEntry, read_fasta_entries
from .tables import TableRow, read_table
from .tasks.vocabulary import BadRowPolicy, LabelKind, Split

#: Column names looked for when none is given (exact name first, then any case).
SEQUENCE_COLUMNS = ("sequence", "seq")
LABEL_COLUMNS = ("target", "label")
MASK_COLUMNS = ("mask",)

#: FLIP ``validation`` values, compared after stripping and lower-casing. Empty (and NA/NaN, as R and pandas
#: write a missing value) means "not a validation row", which is how FLIP files mark ordinary training rows.
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "", "na", "nan", "none"})
_SETS = ("train", "test")


class TaskDataError(ValueError):
    """A task file is malformed (missing columns, unknown split, a bad row under ``on_bad_row="error"``)."""


@dataclass
class LabelledSequences:
    """Sequences with one label each (a float, a class id, or a list of per-residue class ids / -100).

    ``names`` holds each row's origin (``file:line`` for CSV rows, the FASTA id for per-residue rows);
    ``skipped`` the message of every bad row left out under ``on_bad_row="skip"``.
    """

    sequences: list[str] = field(default_factory=list)
    labels: list = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, sequence: str, label, name: str) -> None:
        self.sequences.append(sequence)
        self.labels.append(label)
        self.names.append(name)

    def reject(self, message: str, policy: BadRowPolicy) -> None:
        if policy == "error":
            raise TaskDataError(message)
        self.skipped.append(message)


def report_skipped(data_by_split: Mapping[Split, LabelledSequences], limit: int | None = None) -> str:
    """Every skipped row of ``data_by_split`` (split name -> data), one line each, under a count summary.

    Returns "" when nothing was skipped. A row that belongs to no split (e.g. an unexpected FLIP ``set`` value)
    is reported by every split's read; it is listed once here. ``limit`` caps the rows listed (the count
    still covers them all). Example::

        skipped 2 bad rows (train: 2, valid: 1, test: 1):
          flip.csv:3: unexpected set value 'tset' (expected train or test, any case)
          flip.csv:5: label 'nan' is not a finite number
    """
    messages = list(dict.fromkeys(message for data in data_by_split.values() for message in data.skipped))
    if not messages:
        return ""
    counts = ", ".join(f"{split}: {len(set(data.skipped))}" for split, data in data_by_split.items() if data.skipped)
    shown = messages if limit is None else messages[: max(limit, 0)]
    lines = [f"skipped {len(messages)} bad row{'' if len(messages) == 1 else 's'} ({counts}):"]
    lines += [f"  {message}" for message in shown]
    if len(shown) < len(messages):
        lines.append(f"  ... and {len(messages) - len(shown)} more")
    return "\n".join(lines)


# ---------------------------------------------------------------- CSV / TSV


def _column(header: list[str], wanted: str | None, candidates: tuple[str, ...], path: str | Path) -> int | None:
    """Index of the first of ``candidates`` (or of ``wanted``) in ``header``: exact name, else any case."""
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


def _required_column(
    header: list[str], wanted: str | None, candidates: tuple[str, ...], path: str | Path, option: str
) -> int:
    index = _column(header, wanted, candidates, path)
    if index is None:
        options = (wanted,) if wanted else candidates
        raise TaskDataError(
            f"{path}: no column {' or '.join(map(repr, options))} (columns: {', '.join(header)}); "
            f"name the right one with {option}"
        )
    return index


def find_column(header: list[str], wanted: str | None, candidates: tuple[str, ...], source: str) -> int | None:
    """Index of the column ``wanted`` (or of the first of ``candidates``), as every reader here finds it: the
    exact name first, then any case; None if absent (a name matching two columns raises, naming ``source``)."""
    return _column(header, wanted, candidates, source)


def csv_has_split_column(path: str | Path) -> bool:
    """Whether a task CSV/TSV has FLIP's ``set`` column, i.e. holds train/valid/test in one file.

    The header is read exactly as :func:`read_csv_task` reads it (byte order mark, quoted names, tab or comma,
    gzip, any case), so a file written by R's ``write.csv`` or pandas ``QUOTE_ALL`` is recognised. An empty
    file raises :class:`TaskDataError`, as reading it would.
    """
    path = Path(path)
    with read_table(path, TaskDataError) as (table, _):
        return _column(table.header, None, ("set",), path) is not None


def _flag(value: str) -> bool | None:
    text = value.strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _in_flip_split(
    fields: _Fields,
    columns: _TaskColumns,
    split: Split,
    where: str,
    data: LabelledSequences,
    on_bad_row: BadRowPolicy,
) -> bool:
    """Whether a row of a FLIP table belongs to ``split`` (its ``set``/``validation`` columns); a row whose columns
    name no split is rejected under ``on_bad_row`` and belongs to none."""
    if columns.set is None:  # not reached: _check_split_column refuses a split of such a table first
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


def _label(raw: str, kind: LabelKind) -> tuple[float | int | str | None, str | None]:
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


@dataclass(frozen=True)
class _TaskColumns:
    """Indices, in a table's header, of the columns a task reads (set/validation: FLIP's split columns)."""

    sequence: int
    label: int
    set: int | None
    validation: int | None


def _task_columns(
    header: list[str], sequence_column: str | None, label_column: str | None, source: str | Path
) -> _TaskColumns:
    return _TaskColumns(
        _required_column(header, sequence_column, SEQUENCE_COLUMNS, source, "--sequence_column"),
        _required_column(header, label_column, LABEL_COLUMNS, source, "--label_column"),
        _column(header, None, ("set",), source),
        _column(header, None, ("validation",), source),
    )


#: A row's text by column index: a CSV row's fields, or the columns read of a table in memory.
_Fields = Sequence[str] | Mapping[int, str]


@dataclass
class _Row:
    """One table row: where it is (``file:line``, ``name (split) row N``), its fields by column index, or what
    makes it unreadable (e.g. a wrong number of fields)."""

    where: str
    fields: _Fields = ()
    problem: str | None = None


def _task_rows(
    rows: Iterable[_Row],
    columns: _TaskColumns,
    label_kind: LabelKind,
    split: Split | None,
    on_bad_row: BadRowPolicy,
    unknown: UnknownPolicy,
    data: LabelledSequences,
) -> int:
    """Check every row and keep the good ones of ``split`` in ``data``; the one row check of every table format.
    Returns the number of rows seen (of any split)."""
    n_rows = 0
    for row in rows:
        n_rows += 1
        where, fields = row.where, row.fields
        if row.problem is not None:
            data.reject(f"{where}: {row.problem}", on_bad_row)
            continue
        if split is not None and not _in_flip_split(fields, columns, split, where, data, on_bad_row):
            continue
        raw_label = fields[columns.label].strip()
        if not raw_label:
            data.reject(f"{where}: missing label", on_bad_row)
            continue
        label, problem = _label(raw_label, label_kind)
        if problem is not None:
            data.reject(f"{where}: {problem}", on_bad_row)
            continue
        try:
            sequence = clean_sequence(fields[columns.sequence], record=where, unknown=unknown)
        except InvalidSequenceError as error:
            data.reject(str(error), on_bad_row)
            continue
        data.add(sequence, label, where)
    return n_rows


def _check_split_column(columns: _TaskColumns, split: Split | None, source: str | Path) -> None:
    if split is not None and columns.set is None:
        raise TaskDataError(f"{source}: split={split!r} needs a FLIP 'set' column; this file is a single split")


def read_csv_task(
    path: str | Path,
    label_kind: LabelKind = "float",
    split: Split | None = None,
    sequence_column: str | None = None,
    label_column: str | None = None,
    on_bad_row: BadRowPolicy = "error",
    unknown: UnknownPolicy = "error",
) -> LabelledSequences:
    """Rows of a CSV task file: TAPE (``seq,label``, one file per split) or FLIP (``sequence,target,set,validation``).

    ``split`` selects rows of a FLIP file (train / valid / test); leave it None for files that are one split.
    ``set`` must be train or test and ``validation`` true/false (also 1/0, yes/no; empty/NA = false), compared
    without case or surrounding spaces; a row with another value belongs to no split and is a bad row of every
    split read. Labels must be finite numbers (``nan``/``inf`` are bad rows); ``label_kind="class"`` keeps them
    as written, for :func:`assign_class_ids`. See the module docstring for the dialects accepted; an empty file,
    a header without rows, or a missing column raise ``TaskDataError``.
    """
    path = Path(path)
    data = LabelledSequences()
    with read_table(path, TaskDataError) as (table, rows):
        header = table.header
        columns = _task_columns(header, sequence_column, label_column, path)
        _check_split_column(columns, split, path)
        n_rows = _task_rows(
            (_csv_row(row, path, len(header)) for row in rows), columns, label_kind, split, on_bad_row, unknown, data
        )
    if n_rows == 0:
        raise TaskDataError(f"{path}: no data rows (the file holds only its header)")
    return data


def _csv_row(row: TableRow, path: Path, width: int) -> _Row:
    where = f"{path}:{row.first}"
    if len(row.fields) == width:
        return _Row(where, row.fields)
    spans = f" (the row spans lines {row.first}-{row.last}: an unclosed quote?)" if row.last > row.first else ""
    count = f"{len(row.fields)} field{'' if len(row.fields) == 1 else 's'}"
    return _Row(where, problem=f"{count}, but the header has {width}{spans}")


# ---------------------------------------------------------------- tables in memory (datasets)

#: Reads one column of a table as Python values (a ``datasets`` split: ``lambda name: split[name]``).
ColumnReader = Callable[[str], Sequence[object]]


def table_text(value: object) -> str:
    """A cell of a typed table as the text a CSV file would hold, so that one set of checks serves both: a
    missing value is empty, a float keeps its exact digits (``repr``), a bool is ``True``/``False`` and a list
    (per-residue labels or mask) is its items joined (bools as 1/0)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "".join(str(int(item)) if isinstance(item, bool) else table_text(item) for item in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _table_rows(source: str, header: list[str], column: ColumnReader, indices: Iterable[int | None]) -> list[_Row]:
    """The rows of a table, each holding the text of the columns at ``indices`` (read once, column by column)."""
    wanted = sorted({index for index in indices if index is not None})
    values = {index: [table_text(value) for value in column(header[index])] for index in wanted}
    count = len(next(iter(values.values()))) if values else 0
    return [_Row(f"{source} row {i}", {index: values[index][i] for index in wanted}) for i in range(count)]


def read_table_task(
    source: str,
    header: list[str],
    column: ColumnReader,
    label_kind: LabelKind = "float",
    split: Split | None = None,
    sequence_column: str | None = None,
    label_column: str | None = None,
    on_bad_row: BadRowPolicy = "error",
    unknown: UnknownPolicy = "error",
) -> LabelledSequences:
    """:func:`read_csv_task` for a table in memory (``header`` its column names, ``column`` reads one), e.g. one
    split of a ``datasets`` dataset; ``source`` names it in messages (``gb1.parquet (train)``). The same columns
    are looked for, FLIP's ``set``/``validation`` split it the same way, and every row gets the same checks."""
    columns = _task_columns(header, sequence_column, label_column, source)
    _check_split_column(columns, split, source)
    rows = _table_rows(source, header, column, (columns.sequence, columns.label, columns.set, columns.validation))
    data = LabelledSequences()
    if _task_rows(rows, columns, label_kind, split, on_bad_row, unknown, data) == 0:
        raise TaskDataError(f"{source}: no data rows")
    return data


def table_has_split_column(header: list[str], source: str) -> bool:
    """Whether a table has FLIP's ``set`` column (its rows hold train, validation and test)."""
    return _column(header, None, ("set",), source) is not None


def read_residue_table(
    source: str,
    header: list[str],
    column: ColumnReader,
    classes: str | None = None,
    split: Split | None = None,
    sequence_column: str | None = None,
    label_column: str | None = None,
    mask_column: str | None = None,
    on_bad_row: BadRowPolicy = "error",
    unknown: UnknownPolicy = "error",
) -> tuple[LabelledSequences, str]:
    """Per-residue labels from a table: a sequence column, a label column holding one class character per
    residue (a string, or a list of one-character items), and optionally a 0/1 mask column (``mask`` by default,
    if present). The checks are those of :func:`read_residue_task` (lengths, unknown characters, the mask);
    FLIP's ``set``/``validation`` columns select ``split`` as for CSV files. ``classes`` defaults to the sorted
    characters of this table's labels. Returns the data and the class string."""
    columns = _task_columns(header, sequence_column, label_column, source)
    _check_split_column(columns, split, source)
    mask = _column(header, mask_column, MASK_COLUMNS, source)
    if mask_column and mask is None:
        raise TaskDataError(f"{source}: no column {mask_column!r} (columns: {', '.join(header)}); check --mask_column")
    rows = _table_rows(source, header, column, (columns.sequence, columns.label, columns.set, columns.validation, mask))
    if classes is None:
        classes = residue_classes(row.fields[columns.label] for row in rows)
    class_ids = {char: index for index, char in enumerate(classes)}
    data = LabelledSequences()
    for row in rows:
        where, fields = row.where, row.fields
        if split is not None and not _in_flip_split(fields, columns, split, where, data, on_bad_row):
            continue
        try:
            sequence = clean_sequence(fields[columns.sequence], record=where, unknown=unknown)
        except InvalidSequenceError as error:
            data.reject(str(error), on_bad_row)
            continue
        labels, problem = residue_labels(
            "".join(fields[columns.label].split()), fields[mask] if mask is not None else None, len(sequence), class_ids
        )
        if problem is not None:
            data.reject(f"{where}: {problem}", on_bad_row)
            continue
        data.add(sequence, labels, where)
    if not rows:
        raise TaskDataError(f"{source}: no data rows")
    return data, classes


def residue_classes(label_texts: Iterable[str]) -> str:
    """The default class string of per-residue labels: every character seen, sorted (whitespace aside)."""
    return "".join(sorted({char for text in label_texts for char in text if not char.isspace()}))


def residue_labels(
    labels: str, mask: str | None, length: int, class_ids: Mapping[str, int]
) -> tuple[list[int] | None, str | None]:
    """Class ids of one sequence's residues (``IGNORE_INDEX`` where ``mask`` is 0), or None and what is wrong."""
    if not labels:
        return None, "missing label"
    if len(labels) != length:
        return None, f"{len(labels)} labels for a sequence of {length} residues"
    unknown = sorted(set(labels) - set(class_ids))
    if unknown:
        return None, f"label characters {unknown} not in classes {''.join(class_ids)!r}"
    mask = "".join(mask.split()) if mask is not None else "1" * length
    if len(mask) != length or set(mask) - {"0", "1"}:
        return None, f"mask must be {length} characters of 0/1"
    return [class_ids[char] if keep == "1" else IGNORE_INDEX for char, keep in zip(labels, mask, strict=True)], None


# ---------------------------------------------------------------- class names


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
    value, problem = _label(str(label), "int")
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


# ---------------------------------------------------------------- per-residue FASTA triples


def _header_fields(header: str) -> dict[str, str]:
    """``1es5-A SET=train VALIDATION=False`` -> {"SET": "train", "VALIDATION": "False"} (keys upper-cased)."""
    return {key.upper(): value for key, _, value in (item.partition("=") for item in header.split()[1:] if "=" in item)}


def _header_side(fields: dict[str, str]) -> tuple[Split | None, str | None]:
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


def _entries_by_id(path: Path) -> tuple[dict[str, FastaEntry], list[FastaEntry]]:
    """Records of one file of the triple, by id; an empty file, a record without id or a repeated id raise."""
    entries = list(read_fasta_entries(path))
    if not entries:
        raise TaskDataError(f"{path}: no FASTA records (empty file?)")
    by_id: dict[str, FastaEntry] = {}
    for entry in entries:
        if not entry.id:
            raise TaskDataError(f"{path}:{entry.line}: record has no id (empty '>' header)")
        if entry.id in by_id:
            raise TaskDataError(
                f"{path}:{entry.line}: duplicate id {entry.id!r} (first at line {by_id[entry.id].line}); "
                "labels would pair with the wrong sequence"
            )
        by_id[entry.id] = entry
    return by_id, entries


def read_residue_task(
    sequences_path: str | Path,
    labels_path: str | Path,
    mask_path: str | Path | None = None,
    classes: str | None = None,
    split: Split | None = None,
    on_bad_row: BadRowPolicy = "error",
    unknown: UnknownPolicy = "error",
) -> tuple[LabelledSequences, str]:
    """Per-residue labels from FLIP's FASTA triple: residues, one label character per residue, and a 0/1 mask.

    Records are matched by the first word of their headers, which must be unique within each file (a repeated
    id raises ``TaskDataError`` naming both lines); the split comes from the labels file's ``SET=``/``VALIDATION=``
    fields (values as for :func:`read_csv_task`; a record without a valid ``SET`` is a bad row when ``split`` is
    given). ``classes`` orders the label characters (class id = index), e.g. ``"CHE"``; by default the sorted
    characters of the whole labels file, so every split gets the same ids. Masked residues (mask 0) get label
    -100 and are ignored in loss and metrics. Returns the data and the class string.
    """
    sequences_path, labels_path = Path(sequences_path), Path(labels_path)
    residues, _ = _entries_by_id(sequences_path)
    masks = _entries_by_id(Path(mask_path))[0] if mask_path else {}
    _, label_entries = _entries_by_id(labels_path)
    if classes is None:
        classes = "".join(sorted({char for entry in label_entries for char in entry.text}))
    class_ids = {char: index for index, char in enumerate(classes)}
    data = LabelledSequences()
    for entry in label_entries:
        name = entry.id
        where = f"{labels_path}:{entry.line} (>{name})"
        if split is not None:
            side, problem = _header_side(_header_fields(entry.header))
            if problem is not None:
                data.reject(f"{where}: {problem}", on_bad_row)
                continue
            if side != split:
                continue
        problem = _residue_row_problem(name, entry.text, residues, masks, class_ids, sequences_path, mask_path)
        if problem:
            data.reject(f"{where}: {problem}", on_bad_row)
            continue
        source = residues[name]
        try:
            sequence = clean_sequence(
                source.text, record=f"{sequences_path}:{source.line} (>{name})", unknown=unknown, locate=source.line_of
            )
        except InvalidSequenceError as error:
            data.reject(str(error), on_bad_row)
            continue
        mask = masks[name].text if mask_path else "1" * len(sequence)
        labels = [class_ids[char] if keep == "1" else IGNORE_INDEX for char, keep in zip(entry.text, mask, strict=True)]
        data.add(sequence, labels, name)
    return data, classes


def _residue_row_problem(
    name: str,
    labels: str,
    residues: dict[str, FastaEntry],
    masks: dict[str, FastaEntry],
    class_ids: dict[str, int],
    sequences_path: Path,
    mask_path: str | Path | None,
) -> str | None:
    """What is wrong with one labels record, naming the other file and its line where the problem lies there."""
    if name not in residues:
        return f"no sequence with this id in {sequences_path}"
    source = residues[name]
    length = len(source.text)
    if len(labels) != length:
        return f"{len(labels)} labels for a sequence of {length} residues ({sequences_path}:{source.line})"
    unknown = sorted(set(labels) - set(class_ids))
    if unknown:
        return f"label characters {unknown} not in classes {''.join(class_ids)!r}"
    if mask_path is not None:
        if name not in masks:
            return f"no mask with this id in {mask_path}"
        mask = masks[name]
        if len(mask.text) != length or set(mask.text) - {"0", "1"}:
            return f"mask {mask_path}:{mask.line} must be {length} characters of 0/1"
    return None
