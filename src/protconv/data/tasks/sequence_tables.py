"""Per-protein task tables: TAPE/FLIP CSV files (read through :func:`protconv.data.tables.read_table`, the one table
dialect of every command) and tables in memory (the columns of a ``datasets`` split), one row check for both.

Bad rows (missing or non-finite label, empty or invalid sequence, a wrong number of fields, an unexpected FLIP
``set``/``validation`` value) are reported with file and line (``NAME (SPLIT) row N`` in a table in memory,
0-based as ``dataset[N]``) under the ``on_bad_row`` policy; a problem with the table as a whole (empty, header
only, missing or repeated columns, bad bytes) always raises :class:`TaskDataError` naming it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ...tokenization.validation import UnknownPolicy
from ..tables import TableRow, read_table
from .columns import TaskColumns, check_split_column, find_column, task_columns
from .flip import in_flip_split
from .labels import parse_label
from .rows import LabelledSequences, Row, TaskDataError
from .vocabulary import BadRowPolicy, LabelKind, Split


def csv_has_split_column(path: str | Path) -> bool:
    """Whether a task CSV/TSV has FLIP's ``set`` column, i.e. holds train/valid/test in one file.

    The header is read exactly as :func:`read_csv_task` reads it (byte order mark, quoted names, tab or comma,
    gzip, any case), so a file written by R's ``write.csv`` or pandas ``QUOTE_ALL`` is recognised. An empty
    file raises :class:`TaskDataError`, as reading it would.
    """
    path = Path(path)
    with read_table(path, TaskDataError) as (table, _):
        return find_column(table.header, None, ("set",), path) is not None


def _task_rows(
    rows: Iterable[Row],
    columns: TaskColumns,
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
        if split is not None and not in_flip_split(fields, columns, split, where, data, on_bad_row):
            continue
        raw_label = fields[columns.label].strip()
        if not raw_label:
            data.reject(f"{where}: missing label", on_bad_row)
            continue
        label, problem = parse_label(raw_label, label_kind)
        if problem is not None:
            data.reject(f"{where}: {problem}", on_bad_row)
            continue
        sequence = data.clean(fields[columns.sequence], on_bad_row, record=where, unknown=unknown)
        if sequence is None:
            continue
        data.add(sequence, label, where)
    return n_rows


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
        columns = task_columns(header, sequence_column, label_column, path)
        check_split_column(columns, split, path)
        n_rows = _task_rows(
            (_csv_row(row, path, len(header)) for row in rows), columns, label_kind, split, on_bad_row, unknown, data
        )
    if n_rows == 0:
        raise TaskDataError(f"{path}: no data rows (the file holds only its header)")
    return data


def _csv_row(row: TableRow, path: Path, width: int) -> Row:
    where = f"{path}:{row.first}"
    if len(row.fields) == width:
        return Row(where, row.fields)
    spans = f" (the row spans lines {row.first}-{row.last}: an unclosed quote?)" if row.last > row.first else ""
    count = f"{len(row.fields)} field{'' if len(row.fields) == 1 else 's'}"
    return Row(where, problem=f"{count}, but the header has {width}{spans}")


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


def table_rows(source: str, header: list[str], column: ColumnReader, indices: Iterable[int | None]) -> list[Row]:
    """The rows of a table, each holding the text of the columns at ``indices`` (read once, column by column)."""
    wanted = sorted({index for index in indices if index is not None})
    values = {index: [table_text(value) for value in column(header[index])] for index in wanted}
    count = len(next(iter(values.values()))) if values else 0
    return [Row(f"{source} row {i}", {index: values[index][i] for index in wanted}) for i in range(count)]


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
    columns = task_columns(header, sequence_column, label_column, source)
    check_split_column(columns, split, source)
    rows = table_rows(source, header, column, (columns.sequence, columns.label, columns.set, columns.validation))
    data = LabelledSequences()
    if _task_rows(rows, columns, label_kind, split, on_bad_row, unknown, data) == 0:
        raise TaskDataError(f"{source}: no data rows")
    return data
