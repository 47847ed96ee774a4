"""Reading the inputs of embed/score/predict (a validation pass over a FASTA file, CSV tables with their line
numbers) and writing outputs atomically."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from transformers import PretrainedConfig

from ..data.fasta import DataFileError, FastaRecord, open_text, read_fasta
from ..tokenization.validation import UnknownPolicy
from .common import Framing, InferenceInputError, check_length_limit

_TAB_SUFFIXES = (".tsv", ".tab", ".tsv.gz", ".tab.gz")


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


def scan_fasta(
    path: str | Path,
    unknown: UnknownPolicy,
    config: PretrainedConfig,
    framing: Framing,
    unique_ids: bool = True,
) -> FastaScan:
    """Read ``path`` once, before any model work, and raise at the first bad record.

    Invalid characters (under ``unknown="error"``) name the record, the residue position and its line; a record
    without an id, a repeated id (``unique_ids``), a record too long for a model with absolute positions, an
    empty file or a binary one are errors too. Only the ids (and their lines) are kept in memory.
    """
    path = check_input_file(path)
    scan = FastaScan(path)
    for record in read_fasta(path, unknown=unknown):
        if not record.id:
            raise InferenceInputError(f"{path}:{record.line}: a record without an id (nothing after '>')")
        if unique_ids and record.id in scan.id_lines:
            raise InferenceInputError(
                f"{record_name(path, record)} repeats the id of the record at line {scan.id_lines[record.id]}; "
                "record ids (the first word of the header) must be unique"
            )
        check_length_limit(config, len(record.sequence) + framing.special_tokens, record_name(path, record))
        scan.id_lines[record.id] = record.line
        scan.residues += len(record.sequence)
    if not scan.id_lines:
        raise InferenceInputError(f"{path}: no FASTA records (the file is empty or holds no '>' header)")
    return scan


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
class CsvRow:
    line: int  # the row's first file line (1-based; the header is line 1 unless blank lines precede it)
    fields: list[str]


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


def _delimiter(path: Path, header_line: str) -> str:
    if path.name.lower().endswith(_TAB_SUFFIXES) or header_line.count("\t") > header_line.count(","):
        return "\t"
    return ","


@contextmanager
def read_csv(path: str | Path) -> Iterator[tuple[CsvTable, Iterator[CsvRow]]]:
    """A CSV/TSV file's header and its non-blank rows with their line numbers, streamed.

    UTF-8 with or without a byte order mark, gzip or plain, comma or tab separated; the first column may be an
    unnamed index (pandas' ``to_csv``). A row whose field count differs from the header's is an error naming
    its line; a file without a header, or with a header and no row, is an error naming the file.
    """
    path = check_input_file(path)
    with open_text(path, newline="") as handle:
        blank = 0
        first = None
        for raw in handle:
            if raw.strip():
                first = raw
                break
            blank += 1
        if first is None:
            raise InferenceInputError(f"{path}: empty file (no header line)")

        def lines() -> Iterator[str]:
            yield first
            yield from handle

        delimiter = _delimiter(path, first)
        reader = csv.reader(lines(), delimiter=delimiter)
        header = [name.strip() for name in next(reader)]
        table = CsvTable(path, header, delimiter, blank + 1)

        def rows() -> Iterator[CsvRow]:
            previous, count = reader.line_num, 0
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as error:
                    raise InferenceInputError(f"{path}:{blank + reader.line_num}: {error}") from None
                line, previous = blank + previous + 1, reader.line_num
                if not any(value.strip() for value in fields):
                    continue
                if len(fields) != len(header):
                    raise InferenceInputError(f"{path}:{line}: {len(fields)} fields, but the header has {len(header)}")
                count += 1
                yield CsvRow(line, fields)
            if count == 0:
                raise InferenceInputError(f"{path}: no data rows (the file holds only its header)")

        yield table, rows()


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


def same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    return a.exists() and b.exists() and os.path.samefile(a, b)


__all__ = [
    "CsvRow",
    "CsvTable",
    "DataFileError",
    "FastaScan",
    "atomic_text_output",
    "check_input_file",
    "first_fasta_record",
    "looks_like_fasta",
    "read_csv",
    "record_name",
    "same_file",
    "scan_fasta",
]
