"""The streaming FASTA reader: real files, gzip, and errors that name the file and line."""

from __future__ import annotations

import gzip

import pytest

from protconv.data import read_fasta
from protconv.tokenization import InvalidSequenceError
from tests.helpers import DATA


def test_reads_real_file_and_gzip_identically(tmp_path) -> None:
    records = list(read_fasta(DATA / "some_proteins.fasta"))
    assert len(records) == 15
    assert records[0].id == "UniRef50_A0A1E3NP16" and records[0].sequence.startswith("AVIYYRFRSQ")
    packed = tmp_path / "some.fasta.gz"
    packed.write_bytes(gzip.compress((DATA / "some_proteins.fasta").read_bytes()))
    assert list(read_fasta(packed)) == records


def test_multiline_records_and_line_numbers(tmp_path) -> None:
    path = tmp_path / "x.fasta"
    path.write_text(">a first\nMKT\nayi\n\n>b\nQQ\n")
    records = list(read_fasta(path))
    assert [(r.id, r.header, r.sequence, r.line) for r in records] == [
        ("a", "a first", "MKTAYI", 1),
        ("b", "b", "QQ", 5),
    ]


def test_bad_character_names_file_line_record_and_position(tmp_path) -> None:
    path = tmp_path / "bad.fasta"
    path.write_text(">ok\nMKT\n>broken protein\nMK\nT9A\n")
    reader = read_fasta(path)
    assert next(reader).sequence == "MKT"
    with pytest.raises(InvalidSequenceError, match=r"bad\.fasta:3 \(>broken protein\): character '9' at position 4"):
        next(reader)
    assert [r.sequence for r in read_fasta(path, unknown="X")] == ["MKT", "MKTXA"]


def test_text_before_header_and_empty_record_are_errors(tmp_path) -> None:
    orphan = tmp_path / "orphan.fasta"
    orphan.write_text("MKT\n>a\nMK\n")
    with pytest.raises(InvalidSequenceError, match=r"orphan\.fasta:1: sequence data before"):
        list(read_fasta(orphan))
    empty = tmp_path / "empty.fasta"
    empty.write_text(">a\n>b\nMK\n")
    with pytest.raises(InvalidSequenceError, match=r"empty\.fasta:1 \(>a\): empty sequence"):
        list(read_fasta(empty))
