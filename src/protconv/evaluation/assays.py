"""Zero-shot fitness assays, read and checked completely before any model work: the ProteinGym v1 layout (a
reference file ``DMS_substitutions.csv`` naming each assay's file, wild type and selection type; per-assay CSVs
with ``mutant``, ``mutated_sequence``, ``DMS_score``, ``DMS_score_bin``) and the ESM layout (one CSV with a mutant
and a score column, the wild type in a FASTA, an offset). Every error names the file and line.

An :class:`Assay` is a handle, not its rows: the check reads each assay and drops its rows (only the last one read
is held, so a one-assay task is read once), and ``evaluate`` reads them again, one assay at a time, as it scores
(:meth:`Assay.rows`): memory stays that of one assay, whatever their number."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..data.tables import TableRow
from ..inference.common import InferenceInputError
from ..inference.inputs import CsvTable, first_fasta_record, read_csv
from ..inference.score import Variant, parse_mutant


class AssayError(InferenceInputError):
    """An assay or reference file protconv evaluate refuses (the message names the file and line)."""


@dataclass(frozen=True)
class AssayRows:
    """One assay's checked variants and their measured scores (and 0/1 labels, when the layout has them)."""

    variants: list[Variant]
    scores: list[float]
    bins: list[int] | None  # DMS_score_bin


@dataclass
class Assay:
    name: str
    path: Path
    wildtype: str
    selection_type: str
    size: int  # variants
    labelled: bool  # has DMS_score_bin
    read: Callable[[], AssayRows] = field(repr=False, compare=False)
    held: AssayRows | None = field(default=None, repr=False, compare=False)

    def rows(self) -> AssayRows:
        """The rows: the ones still held from the check (handed over once, then dropped), else read again."""
        held, self.held = self.held, None
        return held if held is not None else self.read()


def _read(path: Path) -> tuple[CsvTable, list[TableRow]]:
    with read_csv(path) as (table, rows):
        return table, list(rows)


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AssayError(f"{where}: {column} holds {text!r}, not a number") from None
    if not math.isfinite(value):
        raise AssayError(f"{where}: {column} is {text!r}; every variant needs a finite score")
    return value


def _mutated(wildtype: str, variant: Variant) -> str:
    """The wild type with the variant's substitutions applied (joined slices: one C-level copy per row)."""
    pieces, start = [], 0
    for mutation in sorted(variant.mutations, key=lambda m: m.index):
        pieces += [wildtype[start : mutation.index], mutation.mutant]
        start = mutation.index + 1
    pieces.append(wildtype[start:])
    return "".join(pieces)


def read_reference(reference: Path, folder: Path) -> list[tuple[str, Path, str, str]]:
    """(DMS_id, assay file, target_seq, coarse_selection_type) of every reference row; a row whose file is
    missing is an error naming the reference line."""
    table, rows = _read(reference)
    columns = [table.column(name, f"the reference column {name}") for name in ("DMS_id", "DMS_filename", "target_seq")]
    kind = table.header.index("coarse_selection_type") if "coarse_selection_type" in table.header else None
    found = []
    for row in rows:
        name, filename, target = (row.fields[i].strip() for i in columns)
        path = folder / filename
        if not path.is_file():
            raise AssayError(f"{reference}:{row.line}: assay {name!r}: no file {path}")
        found.append((name, path, target.upper(), row.fields[kind].strip() if kind is not None else "all"))
    return found


def proteingym_rows(path: Path, wildtype: str) -> AssayRows:
    """A ProteinGym assay CSV's rows, every one checked against ``wildtype`` (errors name the file and line)."""
    table, rows = _read(path)
    mutant, sequence = table.column("mutant", "the mutant column"), table.column("mutated_sequence", "")
    score, binary = table.column("DMS_score", "the assay score"), table.column("DMS_score_bin", "the 0/1 label")
    variants, scores, bins = [], [], []
    for row in rows:
        where = f"{path}:{row.line}"
        variant = Variant(row.line, row.fields[mutant], parse_mutant(row.fields[mutant], wildtype, 1, where))
        if _mutated(wildtype, variant) != row.fields[sequence].strip().upper():
            raise AssayError(
                f"{where}: mutated_sequence disagrees with target_seq of the reference row with mutant "
                f"{variant.name!r} applied"
            )
        scores.append(_number(row.fields[score].strip(), where, "DMS_score"))
        label = row.fields[binary].strip()
        if label not in ("0", "1", "0.0", "1.0"):
            raise AssayError(f"{where}: DMS_score_bin is {label!r}, not 0 or 1")
        bins.append(int(float(label)))
        variants.append(variant)
    if not variants:
        raise AssayError(f"{path}: no variants")
    return AssayRows(variants, scores, bins)


def _handle(name: str, path: Path, wildtype: str, kind: str, read: Callable[[], AssayRows], hold: bool) -> Assay:
    """The assay checked now (its rows read once), its rows held only with ``hold``."""
    rows = read()
    return Assay(name, path, wildtype, kind, len(rows.variants), rows.bins is not None, read, rows if hold else None)


def read_proteingym_assay(name: str, path: Path, wildtype: str, selection_type: str, hold: bool = True) -> Assay:
    return _handle(name, path, wildtype, selection_type, partial(proteingym_rows, path, wildtype), hold)


def read_proteingym(folder: Path, reference: Path | None = None) -> list[Assay]:
    """Every assay of the reference file, checked in turn; only the last one's rows stay held."""
    found = read_reference(reference or folder / "DMS_substitutions.csv", folder)
    return [read_proteingym_assay(*row, hold=number == len(found)) for number, row in enumerate(found, 1)]


def esm_rows(path: Path, wildtype: str, score_column: str, mutant_column: str, offset: int) -> AssayRows:
    table, rows = _read(path)
    mutant, score = table.column(mutant_column, "the mutant column"), table.column(score_column, "the score column")
    variants, scores = [], []
    for row in rows:
        where = f"{path}:{row.line}"
        variants.append(
            Variant(row.line, row.fields[mutant], parse_mutant(row.fields[mutant], wildtype, offset, where))
        )
        scores.append(_number(row.fields[score].strip(), where, score_column))
    if not variants:
        raise AssayError(f"{path}: no variants")
    return AssayRows(variants, scores, None)


def read_esm_assay(
    path: Path, wildtype_fasta: Path, score_column: str, mutant_column: str = "mutant", offset: int = 1
) -> Assay:
    wildtype = first_fasta_record(wildtype_fasta).sequence
    read = partial(esm_rows, path, wildtype, score_column, mutant_column, offset)
    return _handle(path.stem, path, wildtype, "all", read, hold=True)
