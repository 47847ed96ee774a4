"""Streaming FASTA reader (plain or gzip) with per-record validation."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..tokenization.validation import InvalidSequenceError, UnknownPolicy, clean_sequence


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


def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as handle:
        is_gzip = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if is_gzip else open(path, encoding="utf-8")


def read_fasta(
    path: str | Path,
    unknown: UnknownPolicy = "error",
    on_invalid: Callable[[InvalidSequenceError], None] | None = None,
) -> Iterator[FastaRecord]:
    """Yield records one at a time, so a corpus never needs to fit in memory.

    Sequences are upper-cased and checked against the vocabulary; a bad character raises
    ``InvalidSequenceError`` naming the file, the record's line, its header and the residue position
    (``unknown="X"`` maps such characters to X instead). Text before the first header, or a record with no
    residues, is an error: nothing is silently dropped.

    ``on_invalid``, when given, receives each bad record's error and the record is skipped instead of raising:
    a corpus of millions of proteins should not stop at one odd record, but the caller still counts and reports
    what was skipped. Structural errors (text before the first header) always raise.
    """
    for entry in read_fasta_entries(path):
        record = f"{path}:{entry.line} (>{entry.header})"
        try:
            sequence = clean_sequence(entry.text, record=record, unknown=unknown)
        except InvalidSequenceError as error:
            if on_invalid is None:
                raise
            on_invalid(error)
            continue
        yield FastaRecord(entry.header, sequence, entry.line)


@dataclass(frozen=True)
class FastaEntry:
    """A FASTA record's raw text (lines joined, whitespace removed), for files that hold labels or masks
    rather than residues (e.g. FLIP's per-residue label files)."""

    header: str
    text: str
    line: int


def read_fasta_entries(path: str | Path) -> Iterator[FastaEntry]:
    """Yield records without interpreting their characters; structure errors name the file and line."""
    path = Path(path)
    header: str | None = None
    header_line = 0
    chunks: list[str] = []
    with _open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if line.startswith(">"):
                if header is not None:
                    yield FastaEntry(header, "".join(chunks), header_line)
                header, header_line, chunks = line[1:].strip(), number, []
            elif line:
                if header is None:
                    raise InvalidSequenceError(f"{path}:{number}: sequence data before the first '>' header")
                chunks.append("".join(line.split()))
    if header is not None:
        yield FastaEntry(header, "".join(chunks), header_line)
