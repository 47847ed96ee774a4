"""The one reader of CSV/TSV tables: fine-tuning's task files and the tables of ``score`` and ``predict``.

A table that one command reads must be read the same way by every other, so the dialect is decided here once:
UTF-8 with or without a byte order mark, gzip-compressed or plain (recognised by its bytes, so ``.csv.gz`` and
``.tsv.gz`` work), CRLF or LF line ends, blank lines passed over, quoted fields with embedded delimiters or line
breaks (a row is named by its first line). The delimiter is a tab for ``.tsv``/``.tab`` files; otherwise
whichever of tab and comma the header line holds more of, and ``;`` (the spreadsheet export of locales with a
decimal comma) when the header holds neither.

Errors carry the caller's own exception type (a task file's ``TaskDataError``, an inference input's error), so
that each command reports a table problem as it reports its other input problems; messages name file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .fasta import open_text
from .msa import format_suffix

if TYPE_CHECKING:
    from _csv import Reader

#: Builds the caller's exception from a formatted ``file:line: message``.
TableErrorFactory = Callable[[str], Exception]

TAB_SUFFIXES = frozenset({".tsv", ".tab"})


def table_delimiter(path: Path, header_line: str) -> str:
    """Tab for .tsv/.tab; otherwise whichever of tab and comma the header line holds more of (``;`` if neither)."""
    if format_suffix(path) in TAB_SUFFIXES:
        return "\t"
    tabs, commas = header_line.count("\t"), header_line.count(",")
    if tabs > commas:
        return "\t"
    if commas == 0 and ";" in header_line:
        return ";"
    return ","


@dataclass(frozen=True)
class TableRow:
    """One non-blank data row: its fields and its first and last file lines (1-based; they differ when a quoted
    field holds line breaks, which is how an unclosed quote shows)."""

    first: int
    last: int
    fields: list[str]

    @property
    def line(self) -> int:
        return self.first


@dataclass(frozen=True)
class Table:
    """A table's header (names stripped of surrounding spaces), its delimiter and the header's file line."""

    path: Path
    header: list[str]
    delimiter: str
    header_line: int


@contextmanager
def read_table(path: str | Path, error: TableErrorFactory) -> Iterator[tuple[Table, Iterator[TableRow]]]:
    """The header and the streamed non-blank rows of a CSV/TSV file.

    Raises ``error(message)`` for an empty file, a malformed header or row (``csv`` errors, with the line), and
    (through :func:`protconv.data.fasta.open_text`) for bytes that are not UTF-8 or a truncated gzip stream.
    Field counts are left to the caller: some readers reject a short row, others skip it under a policy.
    """
    path = Path(path)
    with open_text(path, lambda where, line, message: error(f"{where}:{line}: {message}"), newline="") as handle:
        blank = 0
        header_line = None
        for raw in handle:
            if raw.strip():
                header_line = raw
                break
            blank += 1
        if header_line is None:
            raise error(f"{path}: empty file (no header line)")
        delimiter = table_delimiter(path, header_line)
        reader = csv.reader(_chain(header_line, handle), delimiter=delimiter)
        try:
            header = [name.strip() for name in next(reader)]
        except csv.Error as problem:
            raise error(f"{path}:{blank + reader.line_num}: malformed CSV header ({problem})") from None
        table = Table(path, header, delimiter, blank + 1)
        yield table, _rows(reader, path, blank, error)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _rows(reader: Reader, path: Path, blank: int, error: TableErrorFactory) -> Iterator[TableRow]:
    previous = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as problem:
            raise error(f"{path}:{blank + reader.line_num}: malformed CSV ({problem})") from None
        first, previous = blank + previous + 1, reader.line_num
        if any(value.strip() for value in fields):
            yield TableRow(first, blank + previous, fields)
