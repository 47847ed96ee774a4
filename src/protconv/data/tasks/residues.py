"""Per-residue task data: FLIP's FASTA triple (residues, one label character per residue, a 0/1 mask) and tables
holding the same three columns. Masked residues get ``IGNORE_INDEX`` and are left out of loss and metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ...modeling.vocabulary import IGNORE_INDEX
from ...tokenization.validation import UnknownPolicy
from ..fasta import FastaEntry, read_fasta_entries
from .columns import MASK_COLUMNS, check_split_column, find_column, task_columns
from .flip import header_fields, header_side, in_flip_split
from .rows import LabelledSequences, TaskDataError
from .sequence_tables import ColumnReader, table_rows
from .vocabulary import BadRowPolicy, Split


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
    columns = task_columns(header, sequence_column, label_column, source)
    check_split_column(columns, split, source)
    mask = find_column(header, mask_column, MASK_COLUMNS, source)
    if mask_column and mask is None:
        raise TaskDataError(f"{source}: no column {mask_column!r} (columns: {', '.join(header)}); check --mask_column")
    rows = table_rows(source, header, column, (columns.sequence, columns.label, columns.set, columns.validation, mask))
    if classes is None:
        classes = residue_classes(row.fields[columns.label] for row in rows)
    class_ids = {char: index for index, char in enumerate(classes)}
    data = LabelledSequences()
    for row in rows:
        where, fields = row.where, row.fields
        if split is not None and not in_flip_split(fields, columns, split, where, data, on_bad_row):
            continue
        sequence = data.clean(fields[columns.sequence], on_bad_row, record=where, unknown=unknown)
        if sequence is None:
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
            side, problem = header_side(header_fields(entry.header))
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
        record = f"{sequences_path}:{source.line} (>{name})"
        sequence = data.clean(source.text, on_bad_row, record=record, unknown=unknown, locate=source.line_of)
        if sequence is None:
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
