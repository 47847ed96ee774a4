"""Reading the inputs of embed/score/predict (a validation pass over a FASTA file, CSV tables with their line
numbers, a multi-process run's rank-local reads through a FASTA index) and writing outputs atomically."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from transformers import PretrainedConfig

from ..data.choices import check_choice
from ..data.fasta import DataFileError, DuplicateIds, FastaRecord, open_text, read_fasta, unique_records
from ..data.fasta_index import FastaIndex
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


#: The folder, beside OUTPUT, where a multi-process run keeps its FASTA input's index (and a ``.gz`` input's
#: decompressed copy): pretraining's ``OUTPUT_DIR/data_cache``, for an output that is one file. Keyed by the file's
#: contents (:mod:`protconv.data.fasta_index`), so runs on other files, or a rerun, share it.
DATA_CACHE = "data_cache"


def index_cache(output: Path) -> Path:
    """Where the FASTA index of a multi-process run writing ``output`` is kept (see ``DATA_CACHE``)."""
    return output.parent / DATA_CACHE


@dataclass(frozen=True)
class PendingRecords:
    """The records a multi-process run computes, decided once by rank 0 (which validated the whole file) and sent
    to every rank: ``todo`` flags them among the index's records (file order), ``renamed`` holds the ids that
    ``--duplicate_ids rename`` gave (the others are the first word of the header), ``records`` counts the file's
    records once duplicates are handled (``scan_fasta``'s count)."""

    todo: np.ndarray
    renamed: dict[int, str]
    records: int

    @property
    def numbers(self) -> np.ndarray:
        """The index numbers of the pending records, in file order."""
        return np.flatnonzero(self.todo)

    def encode(self) -> bytes:
        """The bytes :meth:`decode` reads back: a JSON line (count, renamed ids), then one byte per record."""
        head = json.dumps({"records": self.records, "renamed": {str(k): v for k, v in self.renamed.items()}})
        return head.encode() + b"\n" + np.ascontiguousarray(self.todo, dtype=np.uint8).tobytes()

    @classmethod
    def decode(cls, data: bytes) -> PendingRecords:
        head, _, flags = data.partition(b"\n")
        meta = json.loads(head)
        todo = np.frombuffer(flags, dtype=np.uint8).astype(bool)
        return cls(todo, {int(k): v for k, v in meta["renamed"].items()}, int(meta["records"]))


def pending_records(index: FastaIndex, duplicate_ids: DuplicateIds, done: Callable[[str], bool]) -> PendingRecords:
    """The records of ``index`` that :func:`read_records` yields (repeated ids handled under ``duplicate_ids``)
    and ``done`` does not accept, named as it names them; from the headers alone (no residue is read)."""
    todo = np.zeros(len(index), dtype=bool)
    renamed: dict[int, str] = {}
    headers = (FastaRecord(header, "", number) for number, header in enumerate(index.headers()))
    records = 0

    def repeated(record: FastaRecord, new_id: str | None) -> None:
        if new_id is not None:
            renamed[record.line] = new_id

    for record in unique_records(headers, duplicate_ids, repeated):  # ``line`` carries the index number through
        records += 1
        todo[record.line] = not done(record.id)
    return PendingRecords(todo, renamed, records)


def rank_records(
    index: FastaIndex,
    pending: PendingRecords,
    mine: Sequence[Sequence[int]],
    chunk_size: int,
    unknown: UnknownPolicy,
) -> Iterator[FastaRecord]:
    """Every pending record in file order, but read from the file only where this rank computes it: ``mine[c]``
    lists this rank's members of chunk ``c`` (of ``chunk_size`` pending records); any other record is a
    placeholder without id or residues, which the rank never runs. So a rank reads only its share's bytes. Read
    records carry ``line`` 0 (the index knows byte offsets, not lines)."""
    numbers = pending.numbers
    placeholder = FastaRecord("", "", 0)
    for chunk, start in enumerate(range(0, len(numbers), chunk_size)):
        size = min(chunk_size, len(numbers) - start)
        members = sorted(mine[chunk]) if chunk < len(mine) else []
        wanted = numbers[[start + member for member in members]] if members else np.zeros(0, dtype=np.int64)
        read = dict(zip(members, _indexed_records(index, wanted, pending.renamed, unknown), strict=True))
        for member in range(size):
            yield read.get(member, placeholder)


def _indexed_records(
    index: FastaIndex, numbers: np.ndarray, renamed: dict[int, str], unknown: UnknownPolicy
) -> list[FastaRecord]:
    """Records ``numbers`` of ``index``, read alone, with their ids (``renamed`` where a duplicate was renamed)."""
    sequences = index.sequences(numbers, unknown) if len(numbers) else []
    found = []
    for number, sequence in zip(numbers.tolist(), sequences, strict=True):
        header = renamed.get(number) or index.header(number)
        found.append(FastaRecord(header, sequence, 0))
    return found


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
    "PendingRecords",
    "atomic_text_output",
    "check_duplicate_ids",
    "check_input_file",
    "check_not_inputs",
    "first_fasta_record",
    "first_ids",
    "index_cache",
    "looks_like_fasta",
    "pending_records",
    "rank_records",
    "read_csv",
    "read_records",
    "record_name",
    "scan_fasta",
]
