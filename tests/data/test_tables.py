"""The one table reader: every dialect a task file or a score/predict table may come in, and its errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from protconv.data.tables import read_table, table_delimiter


class TableProblem(ValueError):
    """Stands for a caller's own error type (the reader raises whatever the caller passes)."""


def _read(path: Path) -> tuple[list[str], str, list[tuple[int, int, list[str]]]]:
    with read_table(path, TableProblem) as (table, rows):
        return table.header, table.delimiter, [(row.first, row.last, row.fields) for row in rows]


@pytest.mark.parametrize(
    ("name", "text", "delimiter"),
    [
        ("a.csv", "sequence,label\nMKT,1.5\n", ","),
        ("a.csv", "sequence\tlabel\nMKT\t1.5\n", "\t"),
        ("a.tsv", "sequence\tlabel\nMKT\t1.5\n", "\t"),
        ("a.csv", "sequence;label\nMKT;1,5\n", ";"),
        ("a.txt", "\ufeffsequence,label\r\nMKT,1.5\r\n", ","),
    ],
)
def test_every_dialect_gives_the_same_table(tmp_path: Path, name: str, text: str, delimiter: str) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode())
    header, found, rows = _read(path)
    assert header == ["sequence", "label"] and found == delimiter
    assert [fields[0] for _, _, fields in rows] == ["MKT"]


def test_gzip_is_recognised_by_its_bytes_and_tsv_gz_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv.gz"
    path.write_bytes(gzip.compress(b"sequence\tlabel,x\nMKT\t1\n"))
    header, delimiter, rows = _read(path)
    assert delimiter == "\t" and header == ["sequence", "label,x"] and rows == [(2, 2, ["MKT", "1"])]


def test_rows_are_named_by_their_first_line_and_blank_lines_pass(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('\n\nsequence,note\nMKT,"two\nlines"\n\n  \nACD,plain\n')
    header, _, rows = _read(path)
    assert header == ["sequence", "note"]
    assert rows == [(4, 5, ["MKT", "two\nlines"]), (8, 8, ["ACD", "plain"])]


def test_the_delimiter_rule(tmp_path: Path) -> None:
    assert table_delimiter(tmp_path / "x.TAB", "a,b") == "\t"
    assert table_delimiter(tmp_path / "x.csv", "a;b,c") == ","
    assert table_delimiter(tmp_path / "x.csv", "a") == ","


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("\n \n")
    with pytest.raises(TableProblem, match=r"a\.csv: empty file \(no header line\)"):
        _read(path)


def test_a_malformed_row_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("sequence,label\nMKT,1\nACD," + "x" * 200_000 + "\n")
    with pytest.raises(TableProblem, match=r"a\.csv:3: malformed CSV \(field larger than field limit"):
        _read(path)


def test_bytes_that_are_not_utf8_are_named_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"sequence,label\nMKT,1\n\xff\xfe,2\n")
    with pytest.raises(TableProblem, match=r"a\.csv:3: "):
        _read(path)
