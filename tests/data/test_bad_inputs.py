"""Issue 14, "nothing executed, nothing lost": regression tests for inputs the readers used to mishandle.

Each test names the problem it pins down. Task files: quoted FLIP headers, unexpected ``set``/``validation``
values, spreadsheet and pandas dialects (BOM, TSV, gzip, CRLF, quoted commas, multi-line fields), non-finite
labels, duplicated ids in per-residue triples, the skipped-row report and empty files. Other readers: bad bytes
and truncated gzip named by file and line, a BOM accepted everywhere, the FASTA residue position and line,
non-finite profile emissions, and the nucleotide warning of the pretraining corpus.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from pathlib import Path

import pytest

from protconv.data.fasta import read_fasta, read_fasta_entries
from protconv.data.fasta_corpus import FastaCorpus
from protconv.data.msa import read_a3m, read_aligned_fasta, read_stockholm
from protconv.data.profile_files import ProfileFormatError, read_hhm_profiles, read_hmmer_profiles
from protconv.data.tasks.residues import read_residue_task
from protconv.data.tasks.rows import LabelledSequences, TaskDataError, report_skipped
from protconv.data.tasks.sequence_tables import csv_has_split_column, read_csv_task
from protconv.tokenization import InvalidSequenceError
from tests.helpers import DATA, MSA

FLIP = DATA / "gb1_three_vs_rest_slice.csv"
TAPE = DATA / "stability_train_slice.csv"
SS = (DATA / "ss_sequences_slice.fasta", DATA / "ss_labels_slice.fasta", DATA / "ss_mask_slice.fasta")
SPLITS = ("train", "valid", "test")


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _csv_text(rows: list[list[str]], delimiter: str = ",", quoting: int = csv.QUOTE_MINIMAL, end: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator=end).writerows(rows)
    return buffer.getvalue()


def _same(a: LabelledSequences, b: LabelledSequences) -> bool:
    return a.sequences == b.sequences and a.labels == b.labels and a.skipped == b.skipped == []


# ---------------------------------------------------------------- A. task files


def test_quoted_flip_header_is_recognised_as_flip(tmp_path) -> None:
    """R's write.csv and pandas QUOTE_ALL quote the header: it is still a FLIP file with a split column."""
    quoted = _write(tmp_path / "quoted.csv", _csv_text(_rows(FLIP), quoting=csv.QUOTE_ALL))
    assert quoted.read_text().startswith('"sequence","target","set","validation"')
    assert csv_has_split_column(quoted) and csv_has_split_column(FLIP)
    assert not csv_has_split_column(TAPE)
    for split in SPLITS:
        assert _same(read_csv_task(quoted, split=split), read_csv_task(FLIP, split=split))


@pytest.mark.parametrize("column, value", [("set", "tset"), ("set", ""), ("validation", "maybe")])
def test_unexpected_flip_split_values_are_reported_not_dropped(tmp_path, column, value) -> None:
    rows = _rows(FLIP)[:6]
    rows[3][rows[0].index(column)] = value
    if column == "validation":
        rows[3][rows[0].index("set")] = "train"
    path = _write(tmp_path / "odd.csv", _csv_text(rows))
    with pytest.raises(TaskDataError, match=rf"odd\.csv:4: .*{column}"):
        for split in SPLITS:
            read_csv_task(path, split=split)
    skipped = [message for split in SPLITS for message in read_csv_task(path, split=split, on_bad_row="skip").skipped]
    assert skipped and all(message.startswith(f"{path}:4: ") for message in skipped)


def test_flip_split_values_ignore_case_and_whitespace(tmp_path) -> None:
    rows = _rows(FLIP)
    for row in rows[1:]:
        row[2] = f" {row[2].upper()} "
        row[3] = {"True": "TRUE", "": " "}.get(row[3], row[3])
    path = _write(tmp_path / "shouty.csv", _csv_text(rows))
    for split in SPLITS:
        assert _same(read_csv_task(path, split=split), read_csv_task(FLIP, split=split))


@pytest.mark.parametrize(
    "name, make",
    [
        ("bom.csv", lambda text: "\ufeff" + text),
        ("crlf.csv", lambda text: text.replace("\n", "\r\n")),
        ("tabs.tsv", lambda text: text.replace(",", "\t")),
        ("tabs.tab", lambda text: text.replace(",", "\t")),
        ("sniffed_tabs.csv", lambda text: text.replace(",", "\t")),
        ("packed.csv.gz", lambda text: gzip.compress(text.encode())),
        ("packed.tsv.gz", lambda text: gzip.compress(text.replace(",", "\t").encode())),
        ("packed_no_suffix.csv", lambda text: gzip.compress(text.encode())),
        ("bom_crlf_gzip.csv.gz", lambda text: gzip.compress(("\ufeff" + text.replace("\n", "\r\n")).encode())),
    ],
)
def test_spreadsheet_and_pandas_dialects_read_like_the_clean_file(tmp_path, name, make) -> None:
    for source in (TAPE, FLIP):
        text = source.read_text()
        path = _write(tmp_path / name, make(text))
        for split in (None,) if source == TAPE else SPLITS:
            assert _same(read_csv_task(path, split=split), read_csv_task(source, split=split)), (name, split)


def test_quoted_commas_and_multiline_fields_keep_line_numbers(tmp_path) -> None:
    text = 'seq,label,note\nMKT,1.0,"a, b"\nMKV,2.0,"two\nlines"\nMKW,abc,x\n"MK\nY",3.0,x\n'
    path = _write(tmp_path / "quoted.csv", text)
    data = read_csv_task(path, on_bad_row="skip")
    assert data.sequences == ["MKT", "MKV", "MKY"] and data.labels == [1.0, 2.0, 3.0]
    assert data.names == [f"{path}:2", f"{path}:3", f"{path}:6"]
    assert data.skipped == [f"{path}:5: label 'abc' is not a valid float"]


@pytest.mark.parametrize("label", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_non_finite_labels_are_bad_rows(tmp_path, label) -> None:
    path = _write(tmp_path / "labels.csv", f"seq,label\nMKT,1.0\nMKV,{label}\nMKW,2.0\n")
    with pytest.raises(TaskDataError, match=rf"labels\.csv:3: label '{re.escape(label)}' is not a finite number"):
        read_csv_task(path)
    data = read_csv_task(path, on_bad_row="skip")
    assert data.labels == [1.0, 2.0] and data.skipped == [f"{path}:3: label {label!r} is not a finite number"]


def test_wrong_field_counts_are_bad_rows(tmp_path) -> None:
    path = _write(tmp_path / "fields.csv", "seq,label\nMKT,1.0\nMKV,2.0,extra\nMKW\nMKY,4.0\n")
    data = read_csv_task(path, on_bad_row="skip")
    assert data.sequences == ["MKT", "MKY"]
    assert data.skipped == [
        f"{path}:3: 3 fields, but the header has 2",
        f"{path}:4: 1 field, but the header has 2",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        ("seq,label\n", "no data rows"),
        ("seq,label\n\n", "no data rows"),
        ("protein,value\nMKT,1\n", "no column 'sequence' or 'seq'"),
        ("seq,label,label\nMKT,1,2\n", "column 'label' appears twice"),
    ],
)
def test_empty_header_only_and_missing_columns_name_the_file(tmp_path, text, message) -> None:
    path = _write(tmp_path / "task.csv", text)
    with pytest.raises(TaskDataError, match=message) as error:
        read_csv_task(path)
    assert str(path) in str(error.value)


def test_invalid_utf8_and_truncated_gzip_in_a_task_file(tmp_path) -> None:
    path = _write(tmp_path / "latin1.csv", "seq,label\nMKT,1.0\nMKV,2.0 # café\n".encode("latin-1"))
    with pytest.raises(TaskDataError, match=r"latin1\.csv:3: .*not UTF-8"):
        read_csv_task(path)
    packed = gzip.compress(TAPE.read_bytes())
    path = _write(tmp_path / "cut.csv.gz", packed[: len(packed) // 2])
    with pytest.raises(TaskDataError, match=r"cut\.csv\.gz:\d+: .*truncated"):
        read_csv_task(path)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_duplicate_ids_in_the_residue_triple_name_both_lines(tmp_path, which) -> None:
    paths = [tmp_path / name for name in ("s.fasta", "l.fasta", "m.fasta")]
    texts = [
        ">a\nMKT\n>b\nMKTA\n",
        ">a SET=train VALIDATION=False\nCHE\n>b SET=train VALIDATION=False\nCHEE\n",
        ">a\n111\n>b\n1101\n",
    ]
    texts[which] += texts[which].split("\n>b")[0] + "\n"  # record 'a' again, at line 5
    for path, text in zip(paths, texts, strict=True):
        _write(path, text)
    with pytest.raises(TaskDataError, match=rf"{paths[which].name}:5: duplicate id 'a' \(first at line 1\)"):
        read_residue_task(*paths, on_bad_row="skip")


def test_residue_headers_without_a_valid_split_are_reported(tmp_path) -> None:
    seqs = _write(tmp_path / "s.fasta", ">a\nMKT\n>b\nMKV\n>c\nMKW\n")
    labels = _write(
        tmp_path / "l.fasta",
        ">a SET=train VALIDATION=False\nCHE\n>b VALIDATION=False\nCHE\n>c SET=trian VALIDATION=False\nCHE\n",
    )
    with pytest.raises(TaskDataError, match=r"l\.fasta:3 \(>b\): no SET= field"):
        read_residue_task(seqs, labels, split="train")
    skipped = read_residue_task(seqs, labels, split="train", on_bad_row="skip")[0].skipped
    assert skipped == [
        f"{labels}:3 (>b): no SET= field in the header",
        f"{labels}:5 (>c): unexpected SET value 'trian' (expected train or test, any case)",
    ]
    nameless = _write(tmp_path / "nameless.fasta", ">\nCHE\n")
    with pytest.raises(TaskDataError, match=r"nameless\.fasta:1: .*no id"):
        read_residue_task(seqs, nameless)


def test_report_skipped_lists_every_row_once_with_a_count(tmp_path) -> None:
    rows = _rows(FLIP)[:8]
    rows[2][2] = "tset"  # line 3: belongs to no split, so every split's read reports it
    rows[4][1] = "nan"  # line 5
    path = _write(tmp_path / "skips.csv", _csv_text(rows))
    splits = {split: read_csv_task(path, split=split, on_bad_row="skip") for split in SPLITS}
    report = report_skipped(splits)
    assert report.splitlines()[0].startswith("skipped 2 bad rows")
    assert report.count(f"{path}:3: ") == 1 and report.count(f"{path}:5: ") == 1
    assert report_skipped({split: read_csv_task(FLIP, split=split) for split in SPLITS}) == ""


# ---------------------------------------------------------------- B. every reader: bytes, gzip, BOM


def _fasta_reader(path):
    return list(read_fasta(path))


READERS = {
    "fasta": (_fasta_reader, ".fasta", (DATA / "few_proteins.fasta").read_bytes()),
    "a3m": (read_a3m, ".a3m", (MSA / "UniRef50_E9K9Y4.a3m").read_bytes()),
    "afa": (read_aligned_fasta, ".afa", b">a\nAC-D\n>b\nACGD\n>c\nA--D\n"),
    "sto": (read_stockholm, ".sto", (MSA / "globins4.sto").read_bytes()),
    "hmm": (read_hmmer_profiles, ".hmm", (MSA / "toy.hmm").read_bytes()),
    "hhm": (read_hhm_profiles, ".hhm", (MSA / "hhsuite_query.hhm").read_bytes()),
    "entries": (lambda path: list(read_fasta_entries(path)), ".fasta", (DATA / "ss_labels_slice.fasta").read_bytes()),
}


def _same_result(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_result(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "probabilities"):
        return a.name == b.name and a.sequence == b.sequence and (a.probabilities == b.probabilities).all()
    if hasattr(a, "rows"):
        return a.names == b.names and a.rows == b.rows and a.sequences == b.sequences
    return a == b


@pytest.mark.parametrize("kind", READERS)
def test_bad_bytes_name_the_file_and_line(tmp_path, kind) -> None:
    read, suffix, text = READERS[kind]
    lines = text.splitlines(keepends=True)
    lines[5] = lines[5][:2] + b"\xe9\xff" + lines[5][2:]  # Latin-1 'é' then a byte no UTF-8 text holds
    for name, data in ((f"bad{suffix}", b"".join(lines)), (f"bad{suffix}.gz", gzip.compress(b"".join(lines)))):
        path = _write(tmp_path / name, data)
        with pytest.raises(ValueError, match=rf"{re.escape(name)}:6: .*not UTF-8") as error:
            read(path)
        assert not isinstance(error.value, UnicodeDecodeError)


@pytest.mark.parametrize("kind", READERS)
def test_truncated_gzip_names_the_file(tmp_path, kind) -> None:
    read, suffix, text = READERS[kind]
    packed = gzip.compress(text)
    for cut in (2, len(packed) // 2, len(packed) - 4):
        path = _write(tmp_path / f"cut{suffix}.gz", packed[:cut])
        with pytest.raises(ValueError, match=rf"cut{re.escape(suffix)}\.gz:\d+: .*(truncated|corrupt)") as error:
            read(path)
        assert not isinstance(error.value, (EOFError, UnicodeDecodeError))


@pytest.mark.parametrize("kind", READERS)
def test_a_byte_order_mark_is_accepted_by_every_reader(tmp_path, kind) -> None:
    read, suffix, text = READERS[kind]
    clean = read(_write(tmp_path / f"clean{suffix}", text))
    assert _same_result(read(_write(tmp_path / f"bom{suffix}", b"\xef\xbb\xbf" + text)), clean)
    assert _same_result(read(_write(tmp_path / f"bom{suffix}.gz", gzip.compress(b"\xef\xbb\xbf" + text))), clean)


def test_fasta_error_gives_the_residue_position_and_its_file_line(tmp_path) -> None:
    path = _write(tmp_path / "wrapped.fasta", ">ok\nMKT\n>broken protein\nMKTAY\n\n  IKQ RQ \nQI9S\n")
    with pytest.raises(
        InvalidSequenceError, match=r"wrapped\.fasta:3 \(>broken protein\): character '9' at position 13 \(line 7\)"
    ):
        list(read_fasta(path))
    path = _write(tmp_path / "first.fasta", ">x\n1MKT\n")
    with pytest.raises(InvalidSequenceError, match=r"first\.fasta:1 \(>x\): character '1' at position 1 \(line 2\)"):
        list(read_fasta(path))


def test_binary_fasta_in_the_corpus_names_the_line_not_a_chunk_offset(tmp_path) -> None:
    lines = [f">p{i}\nMKTAYIAKQRQISFVKSHFSRQ\n".encode() for i in range(2000)]
    lines[1500] = b">p1500\nMKTAY\xffIAKQ\n"  # far beyond the first 8 KiB decoding chunk
    path = _write(tmp_path / "late.fasta", b"".join(lines))
    with pytest.raises(InvalidSequenceError, match=r"late\.fasta:3002: .*byte 0xff at column 6.*record >p1500"):
        list(FastaCorpus([path]))


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_emissions_are_profile_format_errors(tmp_path, value) -> None:
    lines = (MSA / "toy.hmm").read_text().splitlines(keepends=True)
    lines[23] = lines[23].replace("0.47804", value.rjust(7), 1)
    path = _write(tmp_path / "nan.hmm", "".join(lines))
    with pytest.raises(ProfileFormatError, match=rf"nan\.hmm:24: .*{re.escape(value)}.*not a finite"):
        read_hmmer_profiles(path)
    lines = (MSA / "hhsuite_query.hhm").read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.startswith("M 1 "))
    lines[number] = lines[number].replace("2443", value, 1)
    path = _write(tmp_path / "nan.hhm", "".join(lines))
    with pytest.raises(ProfileFormatError, match=rf"nan\.hhm:{number + 1}: .*not a finite"):
        read_hhm_profiles(path)


def test_nucleotide_fasta_in_the_corpus_warns_once_naming_the_file(tmp_path, caplog) -> None:
    bases = "ACGTTGCAAGCTTGCAGGCATTACGGATCCAGT"
    dna = _write(tmp_path / "genes.fasta", "".join(f">g{i}\n{bases[i % 7 :]}{bases[: i % 7]}\n" for i in range(150)))
    protein = DATA / "some_proteins.fasta"
    corpus = FastaCorpus([dna, protein])
    with caplog.at_level(logging.WARNING, logger="protconv.data.fasta_corpus"):
        assert len(list(corpus)) == 150 + 15
        list(corpus)  # a second epoch does not warn again
    warnings = [r.getMessage() for r in caplog.records if "nucleotide" in r.getMessage()]
    assert len(warnings) == 1 and str(dna) in warnings[0] and str(protein) not in warnings[0]


def test_non_ascii_letters_that_upper_case_to_residues_are_rejected() -> None:
    """'ß'.upper() is 'SS' and 'ı'.upper() is 'I': they used to pass validation as residues."""
    from protconv.tokenization import clean_sequence

    for text, char in (("MKßA", "ß"), ("MKıA", "ı"), ("MKſA", "ſ")):
        with pytest.raises(InvalidSequenceError, match=f"'{char}' at position 3"):
            clean_sequence(text, record="r")
    assert clean_sequence("mkßa", unknown="X") == "MKXA"


def test_every_reader_error_is_one_catchable_data_file_error(tmp_path) -> None:
    """The CLI can print any reader's file problem in one line by catching ``DataFileError`` (a ValueError);
    FASTA's are also ``InvalidSequenceError``, as before."""
    from protconv.data.fasta import DataFileError, FastaFormatError
    from protconv.data.msa import MSAFormatError

    assert issubclass(MSAFormatError, DataFileError) and issubclass(ProfileFormatError, DataFileError)
    assert issubclass(FastaFormatError, DataFileError) and issubclass(FastaFormatError, InvalidSequenceError)
    error = FastaFormatError(tmp_path / "x.fasta", 3, "bad")
    assert str(error) == f"{tmp_path / 'x.fasta'}:3: bad" and error.line == 3


def test_data_file_errors_survive_pickling_and_worker_reraise(tmp_path) -> None:
    """DataLoader workers pickle errors, and re-raise them as ``type(error)(message)``: both keep the type."""
    import pickle

    from protconv.data.fasta import FastaFormatError
    from protconv.data.msa import MSAFormatError

    for error in (FastaFormatError(tmp_path / "x.fasta", 3, "bad"), MSAFormatError("x.a3m", 2, "bad", "rec")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error) and copy.line == error.line
        rewrapped = type(error)(f"Caught in worker.\nOriginal {error}")
        assert isinstance(rewrapped, ValueError) and str(error) in str(rewrapped)
