"""MSA readers on the real (copied) alignments in tests/data/msa and on malformed input.

Expected counts were obtained independently of the readers with awk one-liners over the files (records,
upper-case + '-' characters per record, lower-case characters in total), then hard-coded.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from protconv.data.msa import (
    MSAFormatError,
    read_a3m,
    read_aligned_fasta,
    read_alignment,
    read_stockholm,
)
from tests.helpers import MSA


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _assert_error(error: pytest.ExceptionInfo[MSAFormatError], path: Path, line: int, record: str | None = None):
    message = str(error.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert error.value.line == line
    if record is not None:
        assert f"'{record}'" in message


def _assert_consistent(alignment) -> None:
    """Structural invariants every reader must keep."""
    n = len(alignment)
    assert len(alignment.names) == len(alignment.sequences) == len(alignment.match_columns) == n
    for row, sequence, columns in zip(alignment.rows, alignment.sequences, alignment.match_columns, strict=True):
        assert len(row) == alignment.n_columns
        assert set(row) <= set("ACDEFGHIKLMNPQRSTVWYBZXJOU-")
        assert sequence == sequence.upper() and "-" not in sequence and "." not in sequence
        assert columns.dtype == np.int64 and len(columns) == len(sequence)
        matched = columns >= 0
        # the matched residues, read back through their columns, are exactly the row's non-gap characters
        assert "".join(row[c] for c in columns[matched]) == row.replace("-", "")
        assert "".join(np.array(list(sequence))[matched]) == row.replace("-", "")
        assert np.all(np.diff(columns[matched]) > 0)


# ---------------------------------------------------------------- A3M


def test_a3m_uniref50_counts_and_insertions() -> None:
    alignment = read_a3m(MSA / "UniRef50_E9K9Y4.a3m")
    assert len(alignment) == 17 and alignment.n_columns == 98
    assert alignment.names[0] == "UniRef50_E9K9Y4"
    assert alignment.source.endswith("UniRef50_E9K9Y4.a3m")
    assert sum(int((columns == -1).sum()) for columns in alignment.match_columns) == 131
    _assert_consistent(alignment)
    # record 6: ---LVIGAIHIRLED--GGKRVLQTDQEFFWRITERTtnegaplqDGFPE...
    assert alignment.names[5] == "tr|G9ZNW5|G9ZNW5_9LACO"
    assert alignment.rows[5].startswith("---LVIGAIHIRLED--GGKRVLQTDQEFFWRITERTDGFPE")
    sequence, columns = alignment.sequences[5], alignment.match_columns[5]
    assert sequence.startswith("LVIGAIHIRLEDGGKRVLQTDQEFFWRITERTTNEGAPLQDGFPE")
    assert columns[0] == 3 and columns[11] == 14 and columns[12] == 17
    assert columns[31] == 36  # T, the last match residue before the insertion
    assert list(columns[32:40]) == [-1] * 8  # tnegaplq: insert residues, kept in the sequence
    assert columns[40] == 37  # D resumes at the next match column


def test_a3m_hhsuite_query() -> None:
    alignment = read_a3m(MSA / "hhsuite_query.a3m")
    assert len(alignment) == 59 and alignment.n_columns == 431
    assert sum(int((columns == -1).sum()) for columns in alignment.match_columns) == 901
    assert alignment.rows[0] == alignment.sequences[0]  # the query: no gaps, no insertions
    assert list(alignment.match_columns[0]) == list(range(431))
    assert [len(sequence) for sequence in alignment.sequences[:3]] == [431, 432, 431]
    _assert_consistent(alignment)


def test_a3m_skips_leading_comment_and_dots(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.a3m", "#3\t1\n>q desc\nACD\n>b\nA.c-D\n>c\nAC\nD\n")
    alignment = read_a3m(path)
    assert alignment.names == ["q", "b", "c"]
    assert alignment.rows == ["ACD", "A-D", "ACD"]
    assert alignment.sequences[1] == "ACD"
    assert list(alignment.match_columns[1]) == [0, -1, 2]


# ---------------------------------------------------------------- aligned FASTA


def test_aligned_fasta_plain_every_column_matches(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.afa", ">a\nAC-D\n>b\nA.ED\n>c\n--ED\n")
    alignment = read_aligned_fasta(path)
    assert alignment.rows == ["AC-D", "A-ED", "--ED"]
    assert alignment.sequences == ["ACD", "AED", "ED"]
    assert [list(c) for c in alignment.match_columns] == [[0, 1, 3], [0, 2, 3], [2, 3]]
    _assert_consistent(alignment)


def test_aligned_fasta_a2m_lowercase_columns_are_inserts(tmp_path: Path) -> None:
    # columns 2 and 3 hold only lower case and '.': insert columns; column 1 mixes 'c' with upper case: a match
    path = _write(tmp_path, "x.a2m", ">a\nAC..D\n>b\nAcgkE\n>c\n-Cg.D\n")
    alignment = read_aligned_fasta(path)
    assert alignment.n_columns == 3
    assert alignment.rows == ["ACD", "ACE", "-CD"]
    assert alignment.sequences == ["ACD", "ACGKE", "CGD"]
    assert [list(c) for c in alignment.match_columns] == [[0, 1, 2], [0, 1, -1, -1, 2], [1, -1, 2]]
    _assert_consistent(alignment)


# ---------------------------------------------------------------- Stockholm


def test_stockholm_globins_multiblock() -> None:
    alignment = read_stockholm(MSA / "globins4.sto")
    assert alignment.names == ["HBB_HUMAN", "HBA_HUMAN", "MYG_PHYCA", "GLB5_PETMA"]
    assert alignment.n_columns == 80 + 80 + 11  # no RF: every column of the three blocks is a match column
    assert [len(sequence) for sequence in alignment.sequences] == [146, 141, 153, 149]
    assert alignment.rows[0].startswith("--------VHLTPEEKSAVTALWGKV----NVDEV")
    assert alignment.rows[0][78:90] == "VLGAFSDGLAHL"  # block 1 ends ...VL, block 2 starts GAFSDGLAHL
    assert alignment.rows[2][160:] == "AAKYKELGYQG"  # block 3
    assert alignment.sequences[0].startswith("VHLTPEEKSAVTALWGKVNVDEV")
    _assert_consistent(alignment)


def test_stockholm_pfam_slice() -> None:
    alignment = read_stockholm(MSA / "pfam_fn3_seed_slice.sto")
    assert len(alignment) == 8 and alignment.n_columns == 117
    # Pfam names carry the residue range: LAR_DROME/418-503 has 86 residues
    for name, sequence in zip(alignment.names, alignment.sequences, strict=True):
        start, end = name.split("/")[1].split("-")
        assert len(sequence) == int(end) - int(start) + 1, name
    _assert_consistent(alignment)


RF_STOCKHOLM = """# STOCKHOLM 1.0
#=GF ID toy
#=GS seq1 AC X00001

seq1      AC.DE
seq2      A-gD-
#=GR seq1 SS  HHHHH
#=GC RF   xx.xx

seq1      FG
seq2      Fh
#=GC RF   x.
//
"""


def test_stockholm_rf_defines_match_columns(tmp_path: Path) -> None:
    alignment = read_stockholm(_write(tmp_path, "rf.sto", RF_STOCKHOLM))
    assert alignment.n_columns == 5  # RF "xx.xxx.": columns 3 and 7 are insert columns
    assert alignment.rows == ["ACDEF", "A-D-F"]
    assert alignment.sequences == ["ACDEFG", "AGDFH"]
    assert [list(c) for c in alignment.match_columns] == [[0, 1, 2, 3, 4, -1], [0, -1, 2, 4, -1]]
    _assert_consistent(alignment)


def test_stockholm_symfrac_without_rf(tmp_path: Path) -> None:
    text = "# STOCKHOLM 1.0\na ACDE\nb A.D.\nc A.DE\n//\n"
    path = _write(tmp_path, "s.sto", text)
    assert read_stockholm(path).n_columns == 4
    alignment = read_stockholm(path, symfrac=0.5)  # column 2 has 1/3 residues: an insert column
    assert alignment.rows == ["ADE", "AD-", "ADE"]
    assert list(alignment.match_columns[0]) == [0, -1, 1, 2]


# ---------------------------------------------------------------- dispatch and gzip


def test_read_alignment_dispatch_and_gzip(tmp_path: Path) -> None:
    plain = read_alignment(MSA / "globins4.sto")
    compressed = tmp_path / "globins4.sto.gz"
    with open(MSA / "globins4.sto", "rb") as source, gzip.open(compressed, "wb") as target:
        shutil.copyfileobj(source, target)
    assert read_alignment(compressed).rows == plain.rows
    a3m = tmp_path / "u.a3m.gz"
    with open(MSA / "UniRef50_E9K9Y4.a3m", "rb") as source, gzip.open(a3m, "wb") as target:
        shutil.copyfileobj(source, target)
    assert read_alignment(a3m).sequences == read_a3m(MSA / "UniRef50_E9K9Y4.a3m").sequences
    assert read_alignment(_write(tmp_path, "x.fasta", ">a\nAC\n>b\nA-\n")).rows == ["AC", "A-"]
    with pytest.raises(ValueError, match="unknown alignment extension"):
        read_alignment(_write(tmp_path, "x.txt", ">a\nAC\n"))


# ---------------------------------------------------------------- malformed input


def test_a3m_unequal_match_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.a3m", ">a\nACDE\n>b\nACdD\n")  # b: 3 match columns (d is an insertion)
    with pytest.raises(MSAFormatError, match="3 match columns") as error:
        read_a3m(path)
    _assert_error(error, path, 3, "b")


def test_aligned_fasta_unequal_length(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.afa", ">a\nACDE\n\n>b\nACD\n")
    with pytest.raises(MSAFormatError, match="aligned length 3") as error:
        read_aligned_fasta(path)
    _assert_error(error, path, 4, "b")


@pytest.mark.parametrize("reader, name", [(read_a3m, "e.a3m"), (read_aligned_fasta, "e.afa")])
def test_empty_alignment(tmp_path: Path, reader, name: str) -> None:
    path = _write(tmp_path, name, "")
    with pytest.raises(MSAFormatError, match="no aligned sequences") as error:
        reader(path)
    _assert_error(error, path, 1)
    path = _write(tmp_path, name, "#comment\n\n\n")
    with pytest.raises(MSAFormatError, match="no aligned sequences") as error:
        reader(path)
    _assert_error(error, path, 3)


def test_unknown_character_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.a3m", ">a\nACDE\n>b\nAC\nD1\n")
    with pytest.raises(MSAFormatError, match=r"'1' at column 2") as error:
        read_a3m(path)
    _assert_error(error, path, 5, "b")
    path = _write(tmp_path, "star.afa", ">a\nAC*\n")
    with pytest.raises(MSAFormatError, match=r"'\*'") as error:
        read_aligned_fasta(path)
    _assert_error(error, path, 2, "a")


def test_a3m_without_match_columns_and_text_before_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "lower.a3m", ">a\nacde\n")
    with pytest.raises(MSAFormatError, match="no match columns") as error:
        read_a3m(path)
    _assert_error(error, path, 1, "a")
    path = _write(tmp_path, "orphan.a3m", "\nACDE\n>a\nACDE\n")
    with pytest.raises(MSAFormatError, match="before the first '>'") as error:
        read_a3m(path)
    _assert_error(error, path, 2)


def test_stockholm_truncated_and_headerless(tmp_path: Path) -> None:
    path = _write(tmp_path, "cut.sto", "# STOCKHOLM 1.0\n\na ACDE\nb AC-E\n")
    with pytest.raises(MSAFormatError, match="missing '//'") as error:
        read_stockholm(path)
    _assert_error(error, path, 4)
    path = _write(tmp_path, "nohead.sto", "\na ACDE\n//\n")
    with pytest.raises(MSAFormatError, match="header") as error:
        read_stockholm(path)
    _assert_error(error, path, 2)
    path = _write(tmp_path, "empty.sto", "")
    with pytest.raises(MSAFormatError, match="header") as error:
        read_stockholm(path)
    _assert_error(error, path, 1)


def test_stockholm_structure_errors(tmp_path: Path) -> None:
    cases = [
        ("# STOCKHOLM 1.0\na ACDE\nb ACD\n//\n", 3, "b", "segment of 3 columns"),
        ("# STOCKHOLM 1.0\na ACDE\na ACDE\n//\n", 3, "a", "twice"),
        ("# STOCKHOLM 1.0\na AC DE\n//\n", 2, None, "expected '<name> <aligned sequence>'"),
        ("# STOCKHOLM 1.0\na ACDE\nb AC#E\n//\n", 3, "b", r"'#' at column 5"),
        ("# STOCKHOLM 1.0\na AC\nb AC\n\na DE\n//\n", 3, "b", "missing from a block"),
        ("# STOCKHOLM 1.0\na AC\n//\n# STOCKHOLM 1.0\na AC\n//\n", 4, None, "only one alignment"),
        ("# STOCKHOLM 1.0\na AC\n#=GC RF xxx\n//\n", 3, "#=GC RF", "segment of 3 columns"),
        ("# STOCKHOLM 1.0\n//\n", 2, None, "no aligned sequences"),
    ]
    for index, (text, line, record, message) in enumerate(cases):
        path = _write(tmp_path, f"case{index}.sto", text)
        with pytest.raises(MSAFormatError, match=message) as error:
            read_stockholm(path)
        _assert_error(error, path, line, record)
