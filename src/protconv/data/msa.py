"""Multiple sequence alignment readers: A3M, aligned FASTA (A2M-compatible) and Stockholm.

Every reader returns one :class:`Alignment`. It keeps two views of each member, because profile prediction
needs both: ``rows`` (the member's characters in the alignment's *match columns*, the positions a profile is
computed over) and ``sequences`` + ``match_columns`` (every residue of the member, insertions included, with the
match column it sits in or -1). Training examples are the full sequences; targets come from the columns.

Alphabet, the same in every reader: the 20 standard amino acids and the IUPAC extended letters ``BZXJOU``, in
upper or lower case, plus the gap characters ``-`` and ``.``. Anything else (digits, ``*``, ``~``, ...) is an
error naming the file, the line and the column: a stop codon or a nucleotide file inside an MSA is almost
always a pipeline mistake, and silently mapping it to X would hide it. Extended letters are kept in the
sequences (the tokenizer knows them) but take no part in profile counts (see :mod:`protconv.data.profiles`).

A3M and aligned FASTA use their own small FASTA scanner rather than :func:`protconv.data.fasta.read_fasta_entries`
(which they would otherwise reuse): that function joins a record's lines, so a bad character could only be
blamed on the record's header line, and it rejects the ``#`` comment line that HH-suite and ColabFold A3M files
may start with. The opener is shared (gzip by magic bytes, byte order mark dropped, bad bytes reported by line).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..modeling.vocabulary import EXTENDED_AMINO_ACIDS, STANDARD_AMINO_ACIDS
from .fasta import DataFileError, open_text

_LETTERS = STANDARD_AMINO_ACIDS + EXTENDED_AMINO_ACIDS
_ALLOWED = _LETTERS + _LETTERS.lower() + "-."
_NOT_ALLOWED = re.compile(f"[^{re.escape(_ALLOWED)}]")
# Stockholm #=GC RF: these mark insert columns; any other character marks a match (consensus) column.
_RF_GAPS = frozenset(".-_~")

# Byte lookup tables (index = ASCII code) so that whole rows are classified in one numpy call.
_IS_LOWER = np.zeros(256, dtype=bool)
_IS_LOWER[np.frombuffer(_LETTERS.lower().encode(), dtype=np.uint8)] = True
_IS_UPPER = np.zeros(256, dtype=bool)
_IS_UPPER[np.frombuffer(_LETTERS.encode(), dtype=np.uint8)] = True
_IS_RESIDUE = _IS_LOWER | _IS_UPPER
_DASH, _DOT = ord("-"), ord(".")
# To a row character: letters upper-cased, both gap characters become '-'.
_TO_ROW = np.arange(256, dtype=np.uint8)
_TO_ROW[_IS_LOWER] -= 32
_TO_ROW[_DOT] = _DASH
_LOWER_BYTES = _LETTERS.lower().encode()
_UPPERCASE = bytes.maketrans(_LOWER_BYTES, _LETTERS.encode())


class MSAFormatError(DataFileError):
    """Malformed alignment input. The message starts with ``file:line`` (1-based) and names the record.

    Bytes that are not UTF-8 and truncated gzip input raise it too (see :func:`protconv.data.fasta.open_text`).
    """


@dataclass
class Alignment:
    """A multiple sequence alignment reduced to what profiles and per-residue targets need.

    ``rows[i]`` holds member ``i``'s characters in the match columns only (upper-case letters or ``-``; every
    row has ``n_columns`` characters). ``sequences[i]`` is the member's full ungapped residue string, upper-case,
    insert residues included; ``match_columns[i][k]`` is the match column of residue ``k`` or -1 for an insert
    residue. ``len(alignment)`` is the number of members.
    """

    source: str
    names: list[str]
    rows: list[str]
    sequences: list[str]
    match_columns: list[np.ndarray]

    @property
    def n_columns(self) -> int:
        """Number of match columns (profile positions)."""
        return len(self.rows[0]) if self.rows else 0

    def __len__(self) -> int:
        return len(self.rows)


# ---------------------------------------------------------------- FASTA-like input (A3M, aligned FASTA)


@dataclass
class _Record:
    """One FASTA record with the line number of every sequence line, for exact error positions."""

    name: str
    line: int
    chunks: list[tuple[int, str]]


def _fasta_records(path: Path, last_line: list[int]) -> Iterator[_Record]:
    """Yield records; ``#`` lines before the first header are skipped (HH-suite / ColabFold A3M comments).

    ``last_line[0]`` is set to the number of lines read, so an empty alignment can be reported at the end.
    """
    record: _Record | None = None
    with open_text(path, MSAFormatError) as handle:
        for number, raw in enumerate(handle, start=1):
            last_line[0] = number
            line = raw.strip()
            if line.startswith(">"):
                if record is not None:
                    yield record
                header = line[1:].split(maxsplit=1)
                record = _Record(header[0] if header else "", number, [])
            elif record is not None:
                if line:
                    record.chunks.append((number, "".join(line.split())))
            elif line and not line.startswith("#"):
                raise MSAFormatError(path, number, "sequence data before the first '>' header")
    if record is not None:
        yield record


def _record_text(path: Path, record: _Record) -> str:
    """The record's aligned text, after checking every character against the alphabet (exact line/column)."""
    for number, chunk in record.chunks:
        bad = _NOT_ALLOWED.search(chunk)
        if bad is not None:
            raise MSAFormatError(
                path,
                number,
                f"character {bad.group()!r} at column {bad.start() + 1} is not an amino acid or gap "
                f"(allowed: {_LETTERS}, lower case, '-', '.')",
                record.name,
            )
    return "".join(chunk for _, chunk in record.chunks)


def _empty_error(path: Path, line: int) -> MSAFormatError:
    return MSAFormatError(path, max(line, 1), "the file holds no aligned sequences")


def read_a3m(path: str | Path) -> Alignment:
    """Read an A3M alignment (HHblits / HH-suite / ColabFold output).

    Upper-case letters and ``-`` are match columns (``-`` = deletion: the member has no residue there);
    lower-case letters are insert residues (match column -1, kept in ``sequences``); ``.`` is ignored (A2M
    padding of insert columns). Every record must have the same number of match-column characters, else
    ``MSAFormatError`` names the record and its header line. Leading ``#`` comment lines are skipped.
    """
    path = Path(path)
    last_line = [0]
    names: list[str] = []
    rows: list[str] = []
    sequences: list[str] = []
    match_columns: list[np.ndarray] = []
    for record in _fasta_records(path, last_line):
        raw = _record_text(path, record).replace(".", "").encode("ascii")
        row = raw.translate(None, _LOWER_BYTES)
        if not rows and not row:
            raise MSAFormatError(path, record.line, "no match columns (no upper-case letter or '-')", record.name)
        if rows and len(row) != len(rows[0]):
            raise MSAFormatError(
                path,
                record.line,
                f"{len(row)} match columns (upper-case letters and '-'), but the first record has {len(rows[0])}",
                record.name,
            )
        codes = np.frombuffer(raw, dtype=np.uint8)
        is_insert = _IS_LOWER[codes]
        column = np.cumsum(~is_insert) - 1
        names.append(record.name)
        rows.append(row.decode("ascii"))
        sequences.append(raw.translate(_UPPERCASE, b"-").decode("ascii"))
        match_columns.append(np.where(is_insert, -1, column)[codes != _DASH].astype(np.int64))
    if not rows:
        raise _empty_error(path, last_line[0])
    return Alignment(str(path), names, rows, sequences, match_columns)


def read_aligned_fasta(path: str | Path) -> Alignment:
    """Read aligned FASTA (``.afa``/``.fasta``, also A2M): every record has the same aligned length.

    Columns are classified as in A2M, which plain aligned FASTA is a special case of: a column is a *match*
    column when any member has an upper-case letter or ``-`` in it; a column holding only lower-case letters
    and ``.`` is an *insert* column. So, as in A3M, lower-case letters (in insert columns) are insert residues
    with match column -1. In a file without lower case every column holding a residue or ``-`` is a match
    column, and ``-`` and ``.`` are both gaps. A lower-case letter inside a match column counts as a match
    residue (it occupies the column in this format, unlike A3M). Unequal record lengths raise
    ``MSAFormatError`` naming the record and its header line.
    """
    path = Path(path)
    last_line = [0]
    records: list[_Record] = []
    texts: list[str] = []
    for record in _fasta_records(path, last_line):
        text = _record_text(path, record)
        if texts and len(text) != len(texts[0]):
            raise MSAFormatError(
                path,
                record.line,
                f"aligned length {len(text)} differs from the first record's {len(texts[0])} "
                "(aligned FASTA rows must all have the same length)",
                record.name,
            )
        records.append(record)
        texts.append(text)
    if not texts:
        raise _empty_error(path, last_line[0])
    width = len(texts[0])
    matrix = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8).reshape(len(texts), width)
    match_mask = (_IS_UPPER[matrix] | (matrix == _DASH)).any(axis=0)
    if not match_mask.any():
        raise MSAFormatError(path, records[0].line, "no match columns (no upper-case letter or '-')", records[0].name)
    return _from_matrix(path, [record.name for record in records], matrix, match_mask)


def _from_matrix(path: Path, names: list[str], matrix: np.ndarray, match_mask: np.ndarray) -> Alignment:
    """Build an Alignment from equal-length aligned rows (an (n, width) byte matrix) and a match-column mask."""
    column_of = np.where(match_mask, np.cumsum(match_mask) - 1, -1).astype(np.int64)
    row_bytes = _TO_ROW[matrix[:, match_mask]]
    is_residue = _IS_RESIDUE[matrix]
    letters = _TO_ROW[matrix]
    rows = [row.tobytes().decode("ascii") for row in row_bytes]
    sequences = [letters[i][is_residue[i]].tobytes().decode("ascii") for i in range(len(names))]
    match_columns = [column_of[is_residue[i]] for i in range(len(names))]
    return Alignment(str(path), names, rows, sequences, match_columns)


# ---------------------------------------------------------------- Stockholm


@dataclass
class _StockholmState:
    """What the Stockholm scanner has collected so far."""

    segments: dict[str, list[str]]
    last_line: dict[str, int]
    rf: list[str]
    block_width: int | None = None
    block_names: set[str] | None = None


def read_stockholm(path: str | Path, symfrac: float | None = None) -> Alignment:
    """Read a Stockholm alignment (Pfam seeds, HMMER output), one or several interleaved blocks.

    A member's segments are joined across blocks in file order. ``#=GC RF`` defines the match columns when
    present (any non-gap character = match column, ``.``/``-``/``_``/``~`` = insert column), as in HMMER's
    ``hmmbuild --hand``. Without RF every column is a match column by default: nothing is dropped and gappy
    columns simply get fewer counts (and so more prior). ``symfrac`` opts into HMMER's default rule instead
    (``hmmbuild --symfrac``, 0.5): a column is a match column when at least that fraction of members has a
    residue in it; HMMER weights that fraction, this reader counts members unweighted. ``#=GF``, ``#=GS``,
    ``#=GR``, other ``#=GC`` lines and comments are ignored. Missing header or ``//``, a line that is not
    ``name sequence``, blocks of unequal width, a member repeated within a block, or a file holding more than
    one alignment raise ``MSAFormatError`` with the line.
    """
    path = Path(path)
    state = _StockholmState({}, {}, [])
    header_seen = False
    terminated = False
    number = 0
    with open_text(path, MSAFormatError) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if terminated:
                if line:
                    raise MSAFormatError(path, number, "text after '//': only one alignment per file is supported")
                continue
            if not header_seen:
                if line:
                    if not line.startswith("# STOCKHOLM"):
                        raise MSAFormatError(path, number, "missing '# STOCKHOLM 1.0' header")
                    header_seen = True
                continue
            if line == "//":
                terminated = True
            elif not line:
                state.block_width, state.block_names = None, None
            elif line.startswith("#=GC"):
                _stockholm_gc(path, number, line, state)
            elif not line.startswith("#"):
                _stockholm_sequence(path, number, line, state)
    if not header_seen:
        raise MSAFormatError(path, max(number, 1), "empty file: missing '# STOCKHOLM 1.0' header")
    if not terminated:
        raise MSAFormatError(path, max(number, 1), "missing '//' terminator (truncated file?)")
    return _stockholm_alignment(path, number, state, symfrac)


def _stockholm_block_width(path: Path, number: int, width: int, state: _StockholmState, name: str) -> None:
    """All lines of one block (sequences and #=GC) must have the same width."""
    if state.block_width is None:
        state.block_width = width
    elif width != state.block_width:
        raise MSAFormatError(path, number, f"segment of {width} columns in a block of width {state.block_width}", name)


def _stockholm_gc(path: Path, number: int, line: str, state: _StockholmState) -> None:
    parts = line.split()
    if len(parts) >= 3 and parts[1] == "RF":
        if len(parts) != 3:
            raise MSAFormatError(path, number, "#=GC RF annotation must be one word")
        _stockholm_block_width(path, number, len(parts[2]), state, "#=GC RF")
        state.rf.append(parts[2])


def _stockholm_sequence(path: Path, number: int, line: str, state: _StockholmState) -> None:
    parts = line.split()
    if len(parts) != 2:
        raise MSAFormatError(path, number, "expected '<name> <aligned sequence>' (or a '#' annotation line)")
    name, segment = parts
    bad = _NOT_ALLOWED.search(segment)
    if bad is not None:
        column = line.index(segment) + bad.start() + 1
        raise MSAFormatError(
            path,
            number,
            f"character {bad.group()!r} at column {column} is not an amino acid or gap "
            f"(allowed: {_LETTERS}, lower case, '-', '.')",
            name,
        )
    if state.block_names is None:
        state.block_names = set()
    if name in state.block_names:
        raise MSAFormatError(path, number, "name appears twice in one block", name)
    state.block_names.add(name)
    _stockholm_block_width(path, number, len(segment), state, name)
    state.segments.setdefault(name, []).append(segment)
    state.last_line[name] = number


def _stockholm_alignment(path: Path, number: int, state: _StockholmState, symfrac: float | None) -> Alignment:
    if not state.segments:
        raise _empty_error(path, number)
    names = list(state.segments)
    texts = ["".join(state.segments[name]) for name in names]
    width = len(texts[0])
    for name, text in zip(names, texts, strict=True):
        if len(text) != width:
            raise MSAFormatError(
                path,
                state.last_line[name],
                f"aligned length {len(text)} differs from {width} of the first member (missing from a block?)",
                name,
            )
    matrix = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8).reshape(len(texts), width)
    if state.rf:
        rf = "".join(state.rf)
        if len(rf) != width:
            raise MSAFormatError(path, number, f"#=GC RF covers {len(rf)} columns, the alignment has {width}")
        match_mask = np.array([char not in _RF_GAPS for char in rf], dtype=bool)
    elif symfrac is not None:
        match_mask = _IS_RESIDUE[matrix].mean(axis=0) >= symfrac
    else:
        match_mask = np.ones(width, dtype=bool)
    if not match_mask.any():
        raise MSAFormatError(path, number, "no match columns (RF marks none, or symfrac keeps none)")
    return _from_matrix(path, names, matrix, match_mask)


# ---------------------------------------------------------------- dispatch

_READERS = {
    ".a3m": read_a3m,
    ".sto": read_stockholm,
    ".stk": read_stockholm,
    ".sth": read_stockholm,
    ".stockholm": read_stockholm,
    ".fasta": read_aligned_fasta,
    ".fa": read_aligned_fasta,
    ".faa": read_aligned_fasta,
    ".afa": read_aligned_fasta,
    ".a2m": read_aligned_fasta,
    ".aln": read_aligned_fasta,
}

ALIGNMENT_SUFFIXES: tuple[str, ...] = tuple(_READERS)


def format_suffix(path: str | Path) -> str:
    """The lower-case extension that names a file's format, ignoring a trailing ``.gz`` ("" if none)."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def read_alignment(path: str | Path) -> Alignment:
    """Read an alignment, choosing the reader by extension (a trailing ``.gz`` is allowed and decompressed).

    ``.a3m`` → :func:`read_a3m`; ``.sto``/``.stk``/``.sth``/``.stockholm`` → :func:`read_stockholm`;
    ``.fasta``/``.fa``/``.faa``/``.afa``/``.a2m``/``.aln`` → :func:`read_aligned_fasta` (``.aln`` means aligned
    FASTA here, not Clustal). Gzip is detected from the file's bytes, so any reader also takes compressed input.
    """
    path = Path(path)
    reader = _READERS.get(format_suffix(path))
    if reader is None:
        raise ValueError(f"{path}: unknown alignment extension; expected one of {', '.join(ALIGNMENT_SUFFIXES)}")
    return reader(path)
