"""Streaming FASTA reader (plain or gzip) with per-record validation, and the text opener every reader shares.

:func:`open_text` is how every protconv reader (FASTA, A3M, aligned FASTA, Stockholm, ``.hmm``, ``.hhm``, task
CSVs) opens a file: gzip is recognised by its magic bytes whatever the extension, a UTF-8 byte order mark is
dropped, and bytes that are not UTF-8 or a truncated/corrupt gzip stream become one :class:`DataFileError`
(a ``ValueError``) naming the file and the line, instead of a raw ``UnicodeDecodeError``/``EOFError``.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from ..tokenization.validation import InvalidSequenceError, UnknownPolicy, clean_sequence

#: What a reader does with a record whose id (first header word) an earlier record already has: ``error`` (the
#: caller refuses the file), ``skip`` (the later record is dropped) or ``rename`` (``id#2``, ``id#3``, ...).
DuplicateIds = Literal["rename", "skip", "error"]
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


class DataFileError(ValueError):
    """A data file that cannot be read: bad bytes, a truncated gzip stream, or a malformed structure.

    The message starts with ``file:line: `` (1-based line; just ``file: `` when no line applies) and, when one
    applies, names the record. The readers' own errors (``MSAFormatError``, ``ProfileFormatError``,
    ``FastaFormatError``) subclass it, so a caller can catch every file problem at once.
    """

    def __init__(
        self, path: str | Path, line: int | None = None, message: str | None = None, record: str | None = None
    ) -> None:
        if message is None:  # one argument: an already formatted message (as DataLoader workers re-raise errors)
            self.path, self.line, self.record, self.message = None, None, None, str(path)
            super().__init__(str(path))
            return
        self.path, self.line, self.record, self.message = str(path), line, record, message
        where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + (f"record {record!r}: " if record is not None else "") + message)

    def __reduce__(self):
        if self.path is None:
            return type(self), (self.message,)
        return type(self), (self.path, self.line, self.message, self.record)


class FastaFormatError(DataFileError, InvalidSequenceError):
    """A FASTA file that cannot be read as records (bad bytes, truncated gzip, text before the first header).

    Also an :class:`InvalidSequenceError`, the error FASTA input has always raised."""


#: Builds the error a reader raises for a file problem: ``(path, line, message) -> exception``.
ErrorFactory = Callable[[Path, int, str], Exception]


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


@contextmanager
def open_text(path: str | Path, error: ErrorFactory = DataFileError, newline: str | None = None) -> Iterator[IO[str]]:
    """Open ``path`` for reading as UTF-8 text (gzip detected by magic bytes, a byte order mark dropped).

    Iterate the handle inside the ``with`` block: bytes that are not UTF-8 and a truncated or corrupt gzip
    stream raise ``error(path, line, message)`` (default :class:`DataFileError`) with the exact line of the
    bad byte, or the line where the compressed data ends; the normal path costs nothing extra, the file is only
    re-scanned to locate a problem. ``newline`` is passed to the text layer (``""`` for the ``csv`` module).
    """
    path = Path(path)
    gzipped = _is_gzip(path)
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline=newline) as handle:
            yield handle
    except (UnicodeDecodeError, *_GZIP_ERRORS):
        problem = _locate_problem(path, gzipped)
        if problem is None:  # not the file's bytes: an error of the caller's own code, left as it is
            raise
        raise error(path, *problem) from None


def _locate_problem(path: Path, gzipped: bool) -> tuple[int, str] | None:
    """Re-read ``path`` as bytes to find its first undecodable byte or where its gzip stream breaks."""
    number, header = 0, None
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as bad:
                    byte = raw[bad.start]
                    record = f" (record >{header[0]} at line {header[1]})" if header else ""
                    return number, (
                        f"byte 0x{byte:02x} at column {bad.start + 1} is not UTF-8 text{record}: a binary file, "
                        "or text in another encoding (re-save it as UTF-8)"
                    )
                if raw.startswith(b">"):
                    name = raw[1:].split(maxsplit=1)
                    header = (name[0].decode() if name else "", number)
    except _GZIP_ERRORS as broken:
        return number + 1, (
            f"the gzip stream is truncated or corrupt after {number} complete lines ({type(broken).__name__}: "
            f"{broken}); was the download or copy cut short?"
        )
    return None


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA record. ``header`` is the text after ``>``; ``line`` is the 1-based line of the header."""

    header: str
    sequence: str
    line: int

    @property
    def id(self) -> str:
        """The first word of the header, the usual record identifier."""
        return self.header.split(maxsplit=1)[0] if self.header else ""


def read_fasta(
    path: str | Path,
    unknown: UnknownPolicy = "error",
    on_invalid: Callable[[InvalidSequenceError], None] | None = None,
) -> Iterator[FastaRecord]:
    """Yield records one at a time, so a corpus never needs to fit in memory.

    Sequences are upper-cased and checked against the vocabulary; a bad character raises
    ``InvalidSequenceError`` naming the file, the record's header line, its header, the 1-based residue
    position within the record and the file line holding that residue (``unknown="X"`` maps such characters to
    X instead). Text before the first header, or a record with no residues, is an error: nothing is silently
    dropped. Bytes that are not UTF-8 or a truncated gzip stream raise :class:`FastaFormatError` with the line.

    ``on_invalid``, when given, receives each bad record's error and the record is skipped instead of raising:
    a corpus of millions of proteins should not stop at one odd record, but the caller still counts and reports
    what was skipped. Structural errors (text before the first header, bad bytes) always raise.
    """
    for entry in read_fasta_entries(path):
        record = f"{path}:{entry.line} (>{entry.header})"
        try:
            sequence = clean_sequence(entry.text, record=record, unknown=unknown, locate=entry.line_of)
        except InvalidSequenceError as error:
            if on_invalid is None:
                raise
            on_invalid(error)
            continue
        yield FastaRecord(entry.header, sequence, entry.line)


@dataclass(frozen=True)
class FastaEntry:
    """A FASTA record's raw text (lines joined, whitespace removed), for files that hold labels or masks
    rather than residues (e.g. FLIP's per-residue label files).

    ``line`` is the header's line; ``line_of(position)`` gives the file line of a 1-based position in ``text``.
    """

    header: str
    text: str
    line: int
    # The file line and the text of each sequence line, to locate a position (kept, not copied: cheap).
    _numbers: Sequence[int] = field(default=(), repr=False, compare=False)
    _chunks: Sequence[str] = field(default=(), repr=False, compare=False)

    @property
    def id(self) -> str:
        """The first word of the header ("" for an empty header)."""
        return self.header.split(maxsplit=1)[0] if self.header else ""

    def line_of(self, position: int) -> int:
        """The file line that holds the 1-based ``position`` of ``text`` (the header's line if out of range)."""
        end = 0
        for number, chunk in zip(self._numbers, self._chunks, strict=True):
            end += len(chunk)
            if position <= end:
                return number
        return self.line


def read_fasta_entries(path: str | Path) -> Iterator[FastaEntry]:
    """Yield records without interpreting their characters; structure errors name the file and line."""
    path = Path(path)
    header: str | None = None
    header_line = 0
    numbers: list[int] = []
    chunks: list[str] = []
    with open_text(path, FastaFormatError) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if line.startswith(">"):
                if header is not None:
                    yield FastaEntry(header, "".join(chunks), header_line, numbers, chunks)
                header, header_line, numbers, chunks = line[1:].strip(), number, [], []
            elif line:
                if header is None:
                    raise FastaFormatError(path, number, "sequence data before the first '>' header")
                numbers.append(number)
                chunks.append("".join(line.split()))
    if header is not None:
        yield FastaEntry(header, "".join(chunks), header_line, numbers, chunks)


def unique_records(
    records: Iterator[FastaRecord], policy: DuplicateIds, on_duplicate: Callable[[FastaRecord, str | None], None]
) -> Iterator[FastaRecord]:
    """``records`` with repeated ids handled under ``policy`` (``error``: passed through, the caller refuses them).

    ``rename`` gives the n-th record of an id the id ``<id>#<n>`` (then ``#<n>#2`` if that too is taken), the rest of
    the header kept: the same file always gets the same names. ``on_duplicate(record, new_id)`` is told each
    repeated record (``new_id`` None when skipped), so the caller can count and report them.
    """
    seen: dict[str, int] = {}
    for record in records:
        count = seen.get(record.id, 0)
        if count == 0 or policy == "error":
            seen[record.id] = count + 1
            yield record
            continue
        seen[record.id] = count + 1
        if policy == "skip":
            on_duplicate(record, None)
            continue
        new_id = f"{record.id}#{count + 1}"
        while new_id in seen:
            new_id += "#2"
        seen[new_id] = 1
        on_duplicate(record, new_id)
        rest = record.header[len(record.id) :]
        yield FastaRecord(new_id + rest, record.sequence, record.line)
