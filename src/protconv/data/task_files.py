"""Downstream task data: per-protein labels from CSV (TAPE, FLIP) and per-residue labels from FASTA triples (FLIP).

Every loader returns a ``LabelledSequences`` whose rows the fine-tuning path and the supervised baselines share,
so both see exactly the same split. Bad rows (missing label, empty or invalid sequence, labels whose length
differs from the sequence) are reported with file and line; ``on_bad_row="skip"`` skips them and keeps the
messages, ``"error"`` raises at the first one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..tokenization.validation import InvalidSequenceError, UnknownPolicy, clean_sequence
from .fasta import read_fasta_entries

Split = Literal["train", "valid", "test"]
BadRowPolicy = Literal["skip", "error"]
LabelKind = Literal["float", "int"]


class TaskDataError(ValueError):
    """A task file is malformed (missing columns, unknown split, a bad row under ``on_bad_row="error"``)."""


@dataclass
class LabelledSequences:
    """Sequences with one label each (a float, a class id, or a list of per-residue class ids / -100)."""

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


def _first_present(header: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path) -> str:
    options = (wanted,) if wanted else candidates
    for name in options:
        if name in header:
            return name
    raise TaskDataError(f"{path}: no column {' or '.join(map(repr, options))} (columns: {header})")


def _in_flip_split(row: dict[str, str], split: Split) -> bool:
    """FLIP: ``set`` is train/test; training rows with ``validation=True`` form the validation set."""
    is_validation = row.get("validation", "").strip().lower() == "true"
    if split == "test":
        return row["set"] == "test"
    return row["set"] == "train" and is_validation == (split == "valid")


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
    """
    path = Path(path)
    data = LabelledSequences()
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        seq_col = _first_present(header, sequence_column, ("sequence", "seq"), path)
        label_col = _first_present(header, label_column, ("target", "label"), path)
        if split is not None and "set" not in header:
            raise TaskDataError(f"{path}: split={split!r} needs a FLIP 'set' column; this file is a single split")
        for line, row in enumerate(reader, start=2):
            if split is not None and not _in_flip_split(row, split):
                continue
            where = f"{path}:{line}"
            raw_label = (row.get(label_col) or "").strip()
            if not raw_label:
                data.reject(f"{where}: missing label", on_bad_row)
                continue
            try:
                label = float(raw_label) if label_kind == "float" else int(raw_label)
                sequence = clean_sequence(row.get(seq_col) or "", record=where, unknown=unknown)
            except InvalidSequenceError as error:
                data.reject(str(error), on_bad_row)
                continue
            except ValueError:
                data.reject(f"{where}: label {raw_label!r} is not a valid {label_kind}", on_bad_row)
                continue
            data.add(sequence, label, where)
    return data


def _header_fields(header: str) -> tuple[str, dict[str, str]]:
    """``1es5-A SET=train VALIDATION=False`` -> ("1es5-A", {"SET": "train", "VALIDATION": "False"})."""
    name, *rest = header.split()
    return name, dict(item.split("=", 1) for item in rest if "=" in item)


def _in_header_split(fields: dict[str, str], split: Split) -> bool:
    is_validation = fields.get("VALIDATION", "False").lower() == "true"
    if split == "test":
        return fields.get("SET") == "test"
    return fields.get("SET") == "train" and is_validation == (split == "valid")


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

    Records are matched by the first word of their headers; the split comes from the labels file's
    ``SET=``/``VALIDATION=`` fields. ``classes`` orders the label characters (class id = index), e.g. ``"CHE"``;
    by default the sorted characters of the whole labels file, so every split gets the same ids. Masked residues
    (mask 0) get label -100 and are ignored in loss and metrics. Returns the data and the class string.
    """
    sequences_path, labels_path = Path(sequences_path), Path(labels_path)
    residues = {_header_fields(e.header)[0]: e for e in read_fasta_entries(sequences_path)}
    masks = {_header_fields(e.header)[0]: e for e in read_fasta_entries(mask_path)} if mask_path else {}
    label_entries = list(read_fasta_entries(labels_path))
    if classes is None:
        classes = "".join(sorted({char for entry in label_entries for char in entry.text}))
    class_ids = {char: index for index, char in enumerate(classes)}
    data = LabelledSequences()
    for entry in label_entries:
        name, fields = _header_fields(entry.header)
        if split is not None and not _in_header_split(fields, split):
            continue
        where = f"{labels_path}:{entry.line} (>{name})"
        problem = _residue_row_problem(name, entry.text, residues, masks, class_ids, mask_path is not None)
        if problem:
            data.reject(f"{where}: {problem}", on_bad_row)
            continue
        try:
            sequence = clean_sequence(
                residues[name].text, record=f"{sequences_path}:{residues[name].line}", unknown=unknown
            )
        except InvalidSequenceError as error:
            data.reject(str(error), on_bad_row)
            continue
        mask = masks[name].text if mask_path else "1" * len(sequence)
        labels = [class_ids[char] if keep == "1" else -100 for char, keep in zip(entry.text, mask, strict=True)]
        data.add(sequence, labels, name)
    return data, classes


def _residue_row_problem(
    name: str, labels: str, residues: dict, masks: dict, class_ids: dict[str, int], need_mask: bool
) -> str | None:
    if name not in residues:
        return "no sequence with this id in the sequences file"
    length = len(residues[name].text)
    if len(labels) != length:
        return f"{len(labels)} labels for a sequence of {length} residues"
    unknown = sorted(set(labels) - set(class_ids))
    if unknown:
        return f"label characters {unknown} not in classes {''.join(class_ids)!r}"
    if need_mask:
        if name not in masks:
            return "no mask with this id in the mask file"
        mask = masks[name].text
        if len(mask) != length or set(mask) - {"0", "1"}:
            return f"mask must be {length} characters of 0/1"
    return None
