"""Reading the inputs of embed/score/predict (a validation pass over a FASTA file, CSV tables with their line
numbers) and writing outputs atomically."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from transformers import PretrainedConfig

from ..data.choices import check_choice
from ..data.fasta import DataFileError, DuplicateIds, FastaRecord, open_text, read_fasta, unique_records
from ..data.nucleotides import NucleotideCheck
from ..data.tables import Table, TableRow, read_table
from ..file_guards import OutputIsInputError, check_outputs_are_not_inputs
from ..tokenization.encoding import Framing
from ..tokenization.validation import UnknownPolicy
from .common import InferenceInputError, check_length_limit

logger = logging.getLogger(__name__)
#: The DNA/RNA warning of pretraining (``data.fasta_corpus``), same rule: 90% of the first 100 records of 20+
#: letters hold only A/C/G/T/U/N (letters that are valid amino acids, so nothing else notices a nucleotide file).


def check_input_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a file")
    return path


@dataclass
class FastaScan:
    """What a validation pass learnt about a FASTA file: the line of each record id, and the residue count."""

    path: Path
    id_lines: dict[str, int] = field(default_factory=dict)
    residues: int = 0

    @property
    def records(self) -> int:
        return len(self.id_lines)


def record_name(path: Path, record: FastaRecord) -> str:
    return f"{path}:{record.line}: record {record.id!r}"


def check_duplicate_ids(value: object) -> DuplicateIds:
    """``--duplicate_ids``, checked once against its ``Literal`` (an ``InferenceInputError`` otherwise)."""
    try:
        check_choice("duplicate_ids", value, DuplicateIds)
    except ValueError as error:
        raise InferenceInputError(str(error)) from None
    return value  # type: ignore[return-value]


def read_records(path: Path, unknown: UnknownPolicy, duplicate_ids: DuplicateIds = "error") -> Iterator[FastaRecord]:
    """The records of ``path`` with repeated ids handled under ``duplicate_ids`` (the same ids on every pass)."""
    return unique_records(read_fasta(path, unknown=unknown), duplicate_ids, lambda record, new_id: None)


def scan_fasta(
    path: str | Path,
    unknown: UnknownPolicy,
    config: PretrainedConfig,
    framing: Framing,
    unique_ids: bool = True,
    duplicate_ids: DuplicateIds = "error",
) -> FastaScan:
    """Read ``path`` once, before any model work, and raise at the first bad record.

    Invalid characters (under ``unknown="error"``) name the record, the residue position and its line; a record
    without an id, a repeated id (``unique_ids``, under ``duplicate_ids="error"``; ``skip`` and ``rename`` are
    counted and logged once), a record too long for a model with absolute positions, an empty file or a binary
    one are errors too. Only the ids (and their lines) are kept in memory. A file that looks like DNA/RNA gets
    the warning pretraining gives.
    """
    path = check_input_file(path)
    scan = FastaScan(path)
    repeated: list[str] = []
    records = unique_records(
        read_fasta(path, unknown=unknown), duplicate_ids, lambda record, new_id: repeated.append(record.id)
    )
    nucleotides = NucleotideCheck(path, "protconv models read", "translate the file first", logger)
    for record in records:
        if not record.id:
            raise InferenceInputError(f"{path}:{record.line}: a record without an id (nothing after '>')")
        if unique_ids and record.id in scan.id_lines:
            raise InferenceInputError(
                f"{record_name(path, record)} repeats the id of the record at line {scan.id_lines[record.id]}; "
                "record ids (the first word of the header) must be unique (--duplicate_ids rename or skip "
                "accepts such a file)"
            )
        check_length_limit(config, len(record.sequence) + framing.special_tokens, record_name(path, record))
        scan.id_lines[record.id] = record.line
        scan.residues += len(record.sequence)
        nucleotides.add(record.sequence)
    if not scan.id_lines:
        raise InferenceInputError(f"{path}: no FASTA records (the file is empty or holds no '>' header)")
    if repeated:
        done = "skipped" if duplicate_ids == "skip" else "renamed <id>#2, <id>#3, ..."
        logger.warning("%s: %d records repeat an earlier id (%s), %s", path, len(repeated), first_ids(repeated), done)
    nucleotides.finish()
    return scan


def first_ids(ids: list[str], shown: int = 5) -> str:
    """The first ``shown`` ids, quoted, and how many more."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(repr(item) for item in ids[:shown]) + more


def first_fasta_record(path: str | Path, unknown: UnknownPolicy = "error") -> FastaRecord:
    path = check_input_file(path)
    for record in read_fasta(path, unknown=unknown):
        return record
    raise InferenceInputError(f"{path}: no FASTA records (the file is empty or holds no '>' header)")


def looks_like_fasta(path: str | Path) -> bool:
    """Whether the first non-blank line starts with '>' (else the file is read as a CSV table)."""
    path = check_input_file(path)
    with open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith(">")
    raise InferenceInputError(f"{path}: empty file")


@dataclass
class CsvTable:
    path: Path
    header: list[str]
    delimiter: str
    header_line: int

    def column(self, name: str, option: str, candidates: tuple[str, ...] = ()) -> int:
        """Index of column ``name`` (exact, else case-insensitive; ``candidates`` tried when ``name`` is empty)."""
        options = (name,) if name else candidates
        for exact in (True, False):
            for wanted in options:
                found = [
                    i
                    for i, col in enumerate(self.header)
                    if (col == wanted if exact else col.lower() == wanted.lower())
                ]
                if len(found) > 1:
                    raise InferenceInputError(
                        f"{self.path}: column {wanted!r} appears {len(found)} times in the header"
                    )
                if found:
                    return found[0]
        shown = " or ".join(repr(o) for o in options)
        raise InferenceInputError(f"{self.path}: no column {shown} ({option}; the columns are {self.header})")


@contextmanager
def read_csv(path: str | Path) -> Iterator[tuple[CsvTable, Iterator[TableRow]]]:
    """A CSV/TSV file's header and its non-blank rows with their line numbers, streamed.

    The dialects of :mod:`protconv.data.tables` (the reader that ``finetune`` uses too, so a table one command
    reads every command reads); the first column may be an unnamed index (pandas' ``to_csv``). A row whose field
    count differs from the header's is an error naming its line; a file without a header, or with a header and
    no row, is an error naming the file.
    """
    path = check_input_file(path)
    with read_table(path, InferenceInputError) as (table, rows):
        yield CsvTable(path, table.header, table.delimiter, table.header_line), _checked_rows(path, table, rows)


def _checked_rows(path: Path, table: Table, rows: Iterator[TableRow]) -> Iterator[TableRow]:
    count = 0
    for row in rows:
        if len(row.fields) != len(table.header):
            raise InferenceInputError(
                f"{path}:{row.line}: {len(row.fields)} fields, but the header has {len(table.header)}"
            )
        count += 1
        yield row
    if count == 0:
        raise InferenceInputError(f"{path}: no data rows (the file holds only its header)")


@contextmanager
def atomic_text_output(path: str | Path) -> Iterator[IO[str]]:
    """A text handle whose content replaces ``path`` only when the block ends without error (temp + rename):
    a crash or an error never leaves a half-written output, nor destroys an older one."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name for the output")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder for the output {path.name}")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def check_not_inputs(outputs: list[str | Path | None], inputs: list[str | Path | None]) -> None:
    """:func:`protconv.file_guards.check_outputs_are_not_inputs` raising this package's ``InferenceInputError``."""
    try:
        check_outputs_are_not_inputs(outputs, inputs)
    except OutputIsInputError as error:
        raise InferenceInputError(str(error)) from None


__all__ = [
    "CsvTable",
    "DataFileError",
    "FastaScan",
    "atomic_text_output",
    "check_duplicate_ids",
    "check_input_file",
    "check_not_inputs",
    "first_fasta_record",
    "first_ids",
    "looks_like_fasta",
    "read_csv",
    "read_records",
    "record_name",
    "scan_fasta",
]
