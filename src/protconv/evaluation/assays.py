"""Zero-shot fitness assays, read and checked completely before any model work: the ProteinGym v1 layout (a
reference file ``DMS_substitutions.csv`` naming each assay's file, wild type and selection type; per-assay CSVs
with ``mutant``, ``mutated_sequence``, ``DMS_score``, ``DMS_score_bin``) and the ESM layout (one CSV with a mutant
and a score column, the wild type in a FASTA, an offset). Every error names the file and line."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..data.tables import TableRow
from ..inference.common import InferenceInputError
from ..inference.inputs import CsvTable, first_fasta_record, read_csv
from ..inference.score import Variant, parse_mutant


class AssayError(InferenceInputError):
    """An assay or reference file protconv evaluate refuses (the message names the file and line)."""


@dataclass(frozen=True)
class Assay:
    name: str
    path: Path
    wildtype: str
    selection_type: str
    variants: list[Variant]
    scores: list[float]
    bins: list[int] | None  # DMS_score_bin, when the layout has it


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
    residues = list(wildtype)
    for mutation in variant.mutations:
        residues[mutation.index] = mutation.mutant
    return "".join(residues)


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


def read_proteingym_assay(name: str, path: Path, wildtype: str, selection_type: str) -> Assay:
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
    return Assay(name, path, wildtype, selection_type, variants, scores, bins)


def read_proteingym(folder: Path, reference: Path | None = None) -> list[Assay]:
    reference = reference or folder / "DMS_substitutions.csv"
    return [read_proteingym_assay(*row) for row in read_reference(reference, folder)]


def read_esm_assay(
    path: Path, wildtype_fasta: Path, score_column: str, mutant_column: str = "mutant", offset: int = 1
) -> Assay:
    wildtype = first_fasta_record(wildtype_fasta).sequence
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
    return Assay(path.stem, path, wildtype, "all", variants, scores, None)
