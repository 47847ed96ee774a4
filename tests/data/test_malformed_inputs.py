"""A cheap adversarial sweep over every reader: malformed input must end in a clean error or a documented acceptance.

Each case writes one small file (or a FASTA triple) and runs one reader. Outcomes:

- ``clean error``: a ``ValueError`` (not a raw ``UnicodeDecodeError``) or ``FileNotFoundError`` whose message
  names the file and, for a problem on one line, that line (``file:N`` or ``line N``);
- ``reported``: with ``on_bad_row="skip"``/``invalid="skip"``, the bad rows are left out and each one is
  recorded with file and line (``LabelledSequences.skipped``, ``FastaCorpus.skipped`` plus a logged warning);
- ``accepted``: a documented acceptance, usually "reads exactly like the clean file" (BOM, CRLF, TSV, gzip);
- ``unhelpful``: anything else (a raw ``KeyError``/``IndexError``/``EOFError``/``csv.Error``, a message without
  the file or the line, the wrong error) or a silent drop (accepted input that loses or changes rows).

Every case fails on ``unhelpful``; the last test prints the counts (run with ``-s`` to see them at once).
"""

from __future__ import annotations

import gzip
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from protconv.data.fasta import read_fasta, read_fasta_entries
from protconv.data.fasta_corpus import FastaCorpus
from protconv.data.msa import read_a3m, read_aligned_fasta, read_alignment, read_stockholm
from protconv.data.profile_files import read_hhm_profiles, read_hmmer_profiles, read_profile_file
from protconv.data.tasks.residues import read_residue_task
from protconv.data.tasks.rows import LabelledSequences
from protconv.data.tasks.sequence_tables import read_csv_task
from protconv.tokenization.validation import clean_sequence
from tests.helpers import DATA, MSA

SUMMARY: Counter[str] = Counter()

# ---------------------------------------------------------------- expected outcomes


@dataclass(frozen=True)
class Err:
    """A clean error: its message names the culprit file, ``line`` when given, and matches ``match``."""

    line: int | None = None
    match: str | None = None


@dataclass(frozen=True)
class Same:
    """Accepted, and the result equals that of reading ``clean`` (same file names) with the same reader."""

    clean: dict[str, bytes]


@dataclass(frozen=True)
class Ok:
    """Accepted, and ``check(result)`` holds (a documented acceptance that is not a clean file's twin)."""

    check: Callable[[object], bool]
    why: str


@dataclass(frozen=True)
class Skips:
    """Under a skip policy: ``rows`` rows kept and ``lines`` the reported lines of the skipped ones."""

    rows: int
    lines: tuple[int, ...]


@dataclass(frozen=True)
class Case:
    id: str
    read: Callable[[list[Path]], object]
    files: dict[str, bytes]
    expect: Err | Same | Ok | Skips


def _b(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


def _gz(text: str | bytes) -> bytes:
    return gzip.compress(_b(text), mtime=0)


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


BOM = b"\xef\xbb\xbf"

# ---------------------------------------------------------------- readers (each takes the case's paths)


def one(reader):
    """A reader of one path as a reader of the case's paths."""
    return lambda paths: reader(paths[0])


def fasta(paths):
    return list(read_fasta(paths[0]))


def fasta_x(paths):
    return list(read_fasta(paths[0], unknown="X"))


def entries(paths):
    return list(read_fasta_entries(paths[0]))


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _corpus(paths, invalid="error"):
    logger = logging.getLogger("protconv.data.fasta_corpus")
    handler = _Warnings()
    logger.addHandler(handler)
    try:
        corpus = FastaCorpus(paths, invalid=invalid)
        sequences = list(corpus)
    finally:
        logger.removeHandler(handler)
    return sequences, corpus.skipped, handler.messages


def corpus(paths):
    return _corpus(paths)


def corpus_skip(paths):
    return _corpus(paths, "skip")


def csv_task(paths):
    return read_csv_task(paths[0])


def csv_skip(paths):
    return read_csv_task(paths[0], on_bad_row="skip")


def csv_int(paths):
    return read_csv_task(paths[0], label_kind="int")


def flip(paths):
    return [read_csv_task(paths[0], split=split) for split in ("train", "valid", "test")]


def flip_skip(paths):
    splits = [read_csv_task(paths[0], split=split, on_bad_row="skip") for split in ("train", "valid", "test")]
    return LabelledSequences(
        [s for d in splits for s in d.sequences],
        [x for d in splits for x in d.labels],
        [n for d in splits for n in d.names],
        list(dict.fromkeys(m for d in splits for m in d.skipped)),
    )


def residues(paths):
    return read_residue_task(*paths, split="train")


def residues_skip(paths):
    return read_residue_task(*paths, split="train", on_bad_row="skip")[0]


def clean(paths):
    return clean_sequence(paths[0].read_text(encoding="utf-8"), record=str(paths[0]))


# ---------------------------------------------------------------- real and tiny inputs

PROTEINS = (DATA / "few_proteins.fasta").read_bytes()
A3M = b">q\nACDEFG\n>h1\nAC-EFG\n>h2\nACkDEFG\n"
AFA = b">a\nAC-D\n>b\nACGD\n>c\nA--D\n"
STO = (MSA / "globins4.sto").read_bytes()
HMM = (MSA / "toy.hmm").read_bytes()
HHM = (MSA / "hhsuite_query.hhm").read_bytes()
FLIP = (DATA / "gb1_three_vs_rest_slice.csv").read_bytes()
TAPE = b"seq,label\nMKTAYIAK,1.5\nQRQISFVK,-0.25\nSHFSRQ,2\n"
SS_FILES = {
    "s.fasta": (DATA / "ss_sequences_slice.fasta").read_bytes(),
    "l.fasta": (DATA / "ss_labels_slice.fasta").read_bytes(),
    "m.fasta": (DATA / "ss_mask_slice.fasta").read_bytes(),
}
TRIPLE = {
    "s.fasta": b">a\nMKT\n>b\nMKTA\n",
    "l.fasta": b">a SET=train VALIDATION=False\nCHE\n>b SET=train VALIDATION=False\nCHEE\n",
    "m.fasta": b">a\n111\n>b\n1101\n",
}


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _edit_line(data: bytes, number: int, old: bytes, new: bytes) -> bytes:
    lines = _lines(data)
    assert old in lines[number - 1], (number, lines[number - 1][:60])
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    return b"".join(lines)


def _first_lines(data: bytes, count: int) -> bytes:
    return b"".join(_lines(data)[:count])


def _corrupt_crc(data: bytes) -> bytes:
    packed = bytearray(_gz(data))
    packed[-8] ^= 0xFF
    return bytes(packed)


def _triple(**changes: bytes) -> dict[str, bytes]:
    return {**TRIPLE, **{f"{key}.fasta": value for key, value in changes.items()}}


GARBAGE = bytes(range(256)) * 3
HHM_M1 = next(i for i, line in enumerate(_lines(HHM), start=1) if line.startswith(b"M 1 "))

CASES = [
    # ---- FASTA (read_fasta, read_fasta_entries, FastaCorpus, clean_sequence)
    Case("fasta-empty", fasta, {"x.fasta": b""}, Ok(lambda r: r == [], "an empty file has no records")),
    Case("fasta-whitespace-only", fasta, {"x.fasta": b"\n \n\t\n"}, Ok(lambda r: r == [], "no records")),
    Case("fasta-binary", fasta, {"x.fasta": GARBAGE}, Err(2, "not UTF-8")),
    Case("fasta-truncated-gzip", fasta, {"x.fasta.gz": _cut(_gz(PROTEINS))}, Err(None, "truncated")),
    Case("fasta-gzip-magic-only", fasta, {"x.fasta.gz": b"\x1f\x8b"}, Err(1, "truncated or corrupt")),
    Case("fasta-gzip-bad-crc", fasta, {"x.fasta.gz": _corrupt_crc(PROTEINS)}, Err(None, "corrupt")),
    Case(
        "fasta-gzip-two-members",
        fasta,
        {"x.fasta.gz": _gz(PROTEINS[:200]) + _gz(PROTEINS[200:])},
        Same({"x.fasta.gz": PROTEINS}),
    ),
    Case("fasta-bom", fasta, {"x.fasta": BOM + PROTEINS}, Same({"x.fasta": PROTEINS})),
    Case("fasta-bom-gzip", fasta, {"x.fasta.gz": _gz(BOM + PROTEINS)}, Same({"x.fasta.gz": PROTEINS})),
    Case("fasta-utf16", fasta, {"x.fasta": PROTEINS.decode().encode("utf-16")}, Err(1, "0xff at column 1")),
    Case("fasta-latin1-header", fasta, {"x.fasta": b">a caf\xe9\nMKT\n"}, Err(1, "0xe9 at column 7")),
    Case("fasta-nul-byte", fasta, {"x.fasta": b">a\nMKT\n>b\nMK\x00T\n"}, Err(4, r"'\\x00' at position 3 \(line 4\)")),
    Case("fasta-only-headers", fasta, {"x.fasta": b">a\n>b\n"}, Err(1, "empty sequence")),
    Case("fasta-trailing-header", fasta, {"x.fasta": b">a\nMKT\n>b\n"}, Err(3, "empty sequence")),
    Case("fasta-sequence-before-header", fasta, {"x.fasta": b"MKT\n>a\nMKT\n"}, Err(1, "before the first '>'")),
    Case(
        "fasta-lowercase",
        fasta,
        {"x.fasta": b"".join(x if x[:1] == b">" else x.lower() for x in _lines(PROTEINS))},
        Same({"x.fasta": PROTEINS}),
    ),
    Case("fasta-digit", fasta, {"x.fasta": b">a\nMKT\nAY1\n"}, Err(1, r"'1' at position 6 \(line 3\)")),
    Case(
        "fasta-star-mid-sequence",
        fasta,
        {"x.fasta": b">a\nMK*TA\n"},
        Ok(lambda r: r[0].sequence == "MK*TA", "'*' is a vocabulary token (stop)"),
    ),
    Case("fasta-sharp-s", fasta, {"x.fasta": ">a\nMKßA\n".encode()}, Err(1, r"'ß' at position 3 \(line 2\)")),
    Case("fasta-dotless-i", fasta, {"x.fasta": ">a\nMKıA\n".encode()}, Err(1, r"'ı' at position 3")),
    Case(
        "fasta-unknown-as-x",
        fasta_x,
        {"x.fasta": b">a\nMK9T\n"},
        Ok(lambda r: r[0].sequence == "MKXT", "unknown='X' maps it to X"),
    ),
    Case(
        "fasta-huge-line",
        fasta,
        {"x.fasta": b">a\n" + b"MKTAYIAKQR" * 200_000 + b"\n"},
        Ok(lambda r: len(r[0].sequence) == 2_000_000, "no line length limit"),
    ),
    Case("fasta-crlf", fasta, {"x.fasta": PROTEINS.replace(b"\n", b"\r\n")}, Same({"x.fasta": PROTEINS})),
    Case("fasta-cr-only", fasta, {"x.fasta": PROTEINS.replace(b"\n", b"\r")}, Same({"x.fasta": PROTEINS})),
    Case(
        "fasta-spaces-and-tabs",
        fasta,
        {"x.fasta": b">a\nMK T\tA\n  \n>b\nQQ\n"},
        Ok(lambda r: [x.sequence for x in r] == ["MKTA", "QQ"], "whitespace inside sequences is dropped"),
    ),
    Case(
        "fasta-duplicate-ids",
        fasta,
        {"x.fasta": b">a\nMKT\n>a\nQQ\n"},
        Ok(lambda r: len(r) == 2, "a corpus may repeat ids; both records are kept"),
    ),
    Case("fasta-empty-header", fasta, {"x.fasta": b">\nMKT\n"}, Ok(lambda r: r[0].id == "", "an id is optional")),
    Case("entries-bad-bytes", entries, {"x.fasta": b">a\nCHE\n>b\nC\xffE\n"}, Err(4, "0xff at column 2")),
    Case("entries-bom", entries, {"x.fasta": BOM + b">a\nCHE\n"}, Same({"x.fasta": b">a\nCHE\n"})),
    Case("corpus-empty", corpus, {"x.fasta": b""}, Err(None, "no usable FASTA records")),
    Case("corpus-binary", corpus, {"x.fasta": GARBAGE}, Err(2, "not UTF-8")),
    Case("corpus-truncated-gzip", corpus, {"x.fasta.gz": _cut(_gz(PROTEINS))}, Err(None, "truncated")),
    Case("corpus-bad-record", corpus, {"x.fasta": b">a\nMKT\n>b\nMK9\n"}, Err(3, "'9' at position 3")),
    Case(
        "corpus-skip-bad-record",
        corpus_skip,
        {"x.fasta": b">a\nMKT\n>b\nMK9\n>c\nQQ\n"},
        Ok(
            lambda r: r[0] == ["MKT", "QQ"] and r[1] == 1 and any(":3 (>b)" in m for m in r[2]),
            "skipped, counted and logged with file and line",
        ),
    ),
    Case(
        "corpus-dna",
        corpus,
        {"x.fasta": b"".join(b">g%d\nACGTACGTTGCAACGTACGTAC\n" % i for i in range(30))},
        Ok(
            lambda r: len(r[0]) == 30 and any("nucleotide" in m and "x.fasta" in m for m in r[2]),
            "accepted (valid letters) with a warning naming the file",
        ),
    ),
    Case("clean-sequence-digit", clean, {"x.txt": b"MK1T"}, Err(None, "'1' at position 3")),
    Case("clean-sequence-empty", clean, {"x.txt": b" \n"}, Err(None, "empty sequence")),
    # ---- A3M and aligned FASTA
    Case("a3m-empty", one(read_a3m), {"x.a3m": b""}, Err(1, "no aligned sequences")),
    Case("a3m-comments-only", one(read_a3m), {"x.a3m": b"#A3M\n#cols\n"}, Err(2, "no aligned sequences")),
    Case("a3m-binary", one(read_a3m), {"x.a3m": GARBAGE}, Err(2, "not UTF-8")),
    Case(
        "a3m-truncated-gzip",
        one(read_a3m),
        {"x.a3m.gz": _cut(_gz((MSA / "UniRef50_E9K9Y4.a3m").read_bytes()))},
        Err(None, "truncated"),
    ),
    Case("a3m-bom", one(read_a3m), {"x.a3m": BOM + A3M}, Same({"x.a3m": A3M})),
    Case("a3m-crlf", one(read_a3m), {"x.a3m": A3M.replace(b"\n", b"\r\n")}, Same({"x.a3m": A3M})),
    Case("a3m-unequal-columns", one(read_a3m), {"x.a3m": b">a\nACDE\n>b\nACD\n"}, Err(3, "3 match columns")),
    Case("a3m-digit", one(read_a3m), {"x.a3m": b">a\nACDE\n>b\nAC\nD1\n"}, Err(5, "'1' at column 2")),
    Case("a3m-star", one(read_a3m), {"x.a3m": b">a\nAC*E\n"}, Err(2, r"'\*' at column 3")),
    Case("a3m-nul", one(read_a3m), {"x.a3m": b">a\nAC\x00E\n"}, Err(2, "at column 3")),
    Case("a3m-before-header", one(read_a3m), {"x.a3m": b"ACDE\n>a\nACDE\n"}, Err(1, "before the first '>'")),
    Case("a3m-lowercase-only", one(read_a3m), {"x.a3m": b">a\nacde\n"}, Err(1, "no match columns")),
    Case("a3m-header-only", one(read_a3m), {"x.a3m": b">a\n"}, Err(1, "no match columns")),
    Case(
        "a3m-duplicate-names",
        one(read_a3m),
        {"x.a3m": b">a\nACDE\n>a\nAC-E\n"},
        Ok(lambda r: r.names == ["a", "a"], "alignments may repeat a member's name"),
    ),
    Case("afa-unequal-length", one(read_aligned_fasta), {"x.afa": b">a\nACDE\n>b\nACD\n"}, Err(3, "aligned length 3")),
    Case("afa-lowercase-only", one(read_aligned_fasta), {"x.afa": b">a\nacde\n"}, Err(1, "no match columns")),
    Case("afa-tilde", one(read_aligned_fasta), {"x.afa": b">a\nAC~E\n"}, Err(2, "'~' at column 3")),
    Case("afa-empty", one(read_aligned_fasta), {"x.afa": b"\n\n"}, Err(2, "no aligned sequences")),
    Case("afa-bom", one(read_aligned_fasta), {"x.afa": BOM + AFA}, Same({"x.afa": AFA})),
    Case("afa-latin1", one(read_aligned_fasta), {"x.afa": b">a caf\xe9\nACDE\n"}, Err(1, "not UTF-8")),
    # ---- Stockholm and dispatch
    Case("sto-empty", one(read_stockholm), {"x.sto": b""}, Err(1, "missing '# STOCKHOLM 1.0' header")),
    Case("sto-no-header", one(read_stockholm), {"x.sto": b"a ACDE\n//\n"}, Err(1, "missing '# STOCKHOLM")),
    Case("sto-no-terminator", one(read_stockholm), {"x.sto": _first_lines(STO, 8)}, Err(8, "missing '//'")),
    Case("sto-after-terminator", one(read_stockholm), {"x.sto": STO + b"junk\n"}, Err(None, "text after '//'")),
    Case("sto-repeated-name", one(read_stockholm), {"x.sto": b"# STOCKHOLM 1.0\na AC\na AC\n//\n"}, Err(3, "twice")),
    Case(
        "sto-unequal-block",
        one(read_stockholm),
        {"x.sto": b"# STOCKHOLM 1.0\na ACD\nb AC\n//\n"},
        Err(3, "segment of 2 columns"),
    ),
    Case("sto-bad-char", one(read_stockholm), {"x.sto": b"# STOCKHOLM 1.0\na AC1\n//\n"}, Err(2, "'1' at column 5")),
    Case("sto-three-fields", one(read_stockholm), {"x.sto": b"# STOCKHOLM 1.0\na AC DE\n//\n"}, Err(2, "expected")),
    Case("sto-header-only", one(read_stockholm), {"x.sto": b"# STOCKHOLM 1.0\n//\n"}, Err(2, "no aligned sequences")),
    Case(
        "sto-rf-width",
        one(read_stockholm),
        {"x.sto": b"# STOCKHOLM 1.0\na AC\n#=GC RF xxx\n//\n"},
        Err(3, "segment of 3 columns"),
    ),
    Case(
        "sto-missing-from-block",
        one(read_stockholm),
        {"x.sto": b"# STOCKHOLM 1.0\na AC\nb AC\n\na DE\n//\n"},
        Err(None, "missing from a block"),
    ),
    Case("sto-bom", one(read_stockholm), {"x.sto": BOM + STO}, Same({"x.sto": STO})),
    Case("sto-crlf", one(read_stockholm), {"x.sto": STO.replace(b"\n", b"\r\n")}, Same({"x.sto": STO})),
    Case("sto-binary", one(read_stockholm), {"x.sto": b"# STOCKHOLM 1.0\n" + GARBAGE}, Err(3, "not UTF-8")),
    Case("sto-truncated-gzip", one(read_stockholm), {"x.sto.gz": _cut(_gz(STO))}, Err(None, "truncated")),
    Case("alignment-unknown-extension", one(read_alignment), {"x.txt": A3M}, Err(None, "unknown alignment extension")),
    Case("alignment-gz-dispatch", one(read_alignment), {"x.a3m.gz": _gz(A3M)}, Same({"x.a3m": A3M})),
    # ---- HMMER3 .hmm
    Case("hmm-empty", one(read_hmmer_profiles), {"x.hmm": b""}, Err(1, "no HMMER3 model")),
    Case(
        "hmm-format-line-only", one(read_hmmer_profiles), {"x.hmm": b"HMMER3/f [3.3]\n"}, Err(1, "missing 'HMM' line")
    ),
    Case("hmm-truncated", one(read_hmmer_profiles), {"x.hmm": _first_lines(HMM, 30)}, Err(30, "missing '//'")),
    Case("hmm-truncated-gzip", one(read_hmmer_profiles), {"x.hmm.gz": _cut(_gz(HMM))}, Err(None, "truncated")),
    Case(
        "hmm-nan",
        one(read_hmmer_profiles),
        {"x.hmm": _edit_line(HMM, 24, b"0.47804", b"    nan")},
        Err(24, "'nan' .* not a finite"),
    ),
    Case(
        "hmm-inf",
        one(read_hmmer_profiles),
        {"x.hmm": _edit_line(HMM, 24, b"3.91202", b"   -inf")},
        Err(24, "not a finite"),
    ),
    Case(
        "hmm-word-emission",
        one(read_hmmer_profiles),
        {"x.hmm": _edit_line(HMM, 24, b"3.91202", b"  abcde")},
        Err(24, "bad emission value"),
    ),
    Case(
        "hmm-short-match-line",
        one(read_hmmer_profiles),
        {"x.hmm": _edit_line(HMM, 24, b"3.91202  3.91202", b"")},
        Err(24, "bad emission value"),
    ),
    Case(
        "hmm-leng-word",
        one(read_hmmer_profiles),
        {"x.hmm": HMM.replace(b"LENG  4", b"LENG  four", 1)},
        Err(5, "LENG must be an integer"),
    ),
    Case(
        "hmm-effn-nan",
        one(read_hmmer_profiles),
        {"x.hmm": HMM.replace(b"EFFN  1.500000", b"EFFN  nan", 1)},
        Err(14, "EFFN must be a finite number"),
    ),
    Case(
        "hmm-19-letters", one(read_hmmer_profiles), {"x.hmm": _edit_line(HMM, 19, b"Y", b"")}, Err(19, "20 amino acids")
    ),
    Case("hmm-dna", one(read_hmmer_profiles), {"x.hmm": HMM.replace(b"ALPH  amino", b"ALPH  DNA", 1)}, Err(6, "amino")),
    Case(
        "hmm-bad-bytes", one(read_hmmer_profiles), {"x.hmm": _edit_line(HMM, 4, b"Hand", b"H\xe4nd")}, Err(4, "UTF-8")
    ),
    Case("hmm-bom", one(read_hmmer_profiles), {"x.hmm": BOM + HMM}, Same({"x.hmm": HMM})),
    Case("hmm-crlf", one(read_hmmer_profiles), {"x.hmm": HMM.replace(b"\n", b"\r\n")}, Same({"x.hmm": HMM})),
    # ---- HH-suite .hhm and read_profile_file
    Case("hhm-truncated", one(read_hhm_profiles), {"x.hhm": _first_lines(HHM, 100)}, Err(100, "missing '//'")),
    Case("hhm-truncated-gzip", one(read_hhm_profiles), {"x.hhm.gz": _cut(_gz(HHM))}, Err(None, "truncated")),
    Case(
        "hhm-nan",
        one(read_hhm_profiles),
        {"x.hhm": _edit_line(HHM, HHM_M1, b"2443", b"nan")},
        Err(HHM_M1, "not a finite"),
    ),
    Case(
        "hhm-inf",
        one(read_hhm_profiles),
        {"x.hhm": _edit_line(HHM, HHM_M1, b"2443", b"-inf")},
        Err(HHM_M1, "not a finite"),
    ),
    Case(
        "hhm-short-match-line",
        one(read_hhm_profiles),
        {"x.hhm": _edit_line(HHM, HHM_M1, b"2443", b"")},
        Err(HHM_M1, "match-state line 1"),
    ),
    Case(
        "hhm-leng-mismatch",
        one(read_hhm_profiles),
        {"x.hhm": HHM.replace(b"LENG  431", b"LENG  432", 1)},
        Err(None, "LENG is 432"),
    ),
    Case("hhm-bom", one(read_hhm_profiles), {"x.hhm": BOM + HHM}, Same({"x.hhm": HHM})),
    Case("hhm-crlf", one(read_hhm_profiles), {"x.hhm": HHM.replace(b"\n", b"\r\n")}, Same({"x.hhm": HHM})),
    Case("hhm-binary", one(read_hhm_profiles), {"x.hhm": b"HHsearch 1.5\n" + GARBAGE}, Err(3, "not UTF-8")),
    Case("profile-unknown-format", one(read_profile_file), {"x.hmm": b"HMMER2.0\nNAME x\n"}, Err(1, "neither")),
    Case("profile-empty", one(read_profile_file), {"x.hhm": b"\n"}, Err(1, "empty file")),
    # ---- task CSV / TSV
    Case("csv-empty", csv_task, {"t.csv": b""}, Err(None, "empty file")),
    Case("csv-header-only", csv_task, {"t.csv": b"seq,label\n"}, Err(None, "no data rows")),
    Case("csv-missing-column", csv_task, {"t.csv": b"protein,label\nMKT,1\n"}, Err(None, "no column 'sequence'")),
    Case("csv-duplicate-column", csv_task, {"t.csv": b"seq,label,seq\nMKT,1,MKT\n"}, Err(None, "appears twice")),
    Case("csv-binary", csv_task, {"t.csv": GARBAGE}, Err(2, "not UTF-8")),
    Case("csv-latin1", csv_task, {"t.csv": TAPE + "MKT,1 # café\n".encode("latin-1")}, Err(5, "not UTF-8")),
    Case("csv-truncated-gzip", csv_task, {"t.csv.gz": _cut(_gz(FLIP))}, Err(None, "truncated")),
    Case("csv-nan-label", csv_task, {"t.csv": TAPE + b"MKT,nan\n"}, Err(5, "not a finite number")),
    Case("csv-inf-label-skip", csv_skip, {"t.csv": TAPE + b"MKT,inf\nMKV,-Infinity\nMKW,1\n"}, Skips(4, (5, 6))),
    Case("csv-missing-label", csv_task, {"t.csv": TAPE + b"MKT,\n"}, Err(5, "missing label")),
    Case("csv-word-label", csv_task, {"t.csv": TAPE + b"MKT,high\n"}, Err(5, "not a valid float")),
    Case("csv-bad-residue", csv_task, {"t.csv": TAPE + b"MK1,1\n"}, Err(5, "'1' at position 3")),
    Case("csv-nul-in-sequence", csv_task, {"t.csv": TAPE + b"MK\x00,1\n"}, Err(5, "position 3")),
    Case("csv-empty-sequence", csv_task, {"t.csv": TAPE + b",1\n"}, Err(5, "empty sequence")),
    Case("csv-too-many-fields", csv_skip, {"t.csv": TAPE + b"MKT,1,2\n"}, Skips(3, (5,))),
    Case("csv-too-few-fields", csv_skip, {"t.csv": TAPE + b"MKT\n"}, Skips(3, (5,))),
    Case("csv-unclosed-quote", csv_skip, {"t.csv": b'seq,label\n"MKT,1\nMKV,2\n'}, Skips(0, (2,))),
    Case("csv-huge-field", csv_task, {"t.csv": b"seq,label\n" + b"M" * 200_000 + b",1\n"}, Err(2, "field")),
    Case("csv-huge-header", csv_task, {"t.csv": b"seq," + b"x" * 200_000 + b"\nMKT,1\n"}, Err(1, "malformed CSV")),
    Case("csv-bom", csv_task, {"t.csv": BOM + TAPE}, Same({"t.csv": TAPE})),
    Case("csv-crlf", csv_task, {"t.csv": TAPE.replace(b"\n", b"\r\n")}, Same({"t.csv": TAPE})),
    Case("csv-tsv-extension", csv_task, {"t.tsv": TAPE.replace(b",", b"\t")}, Same({"t.csv": TAPE})),
    Case("csv-tsv-sniffed", csv_task, {"t.csv": TAPE.replace(b",", b"\t")}, Same({"t.csv": TAPE})),
    Case("csv-semicolons", csv_task, {"t.csv": TAPE.replace(b",", b";")}, Same({"t.csv": TAPE})),
    Case("csv-gzip", csv_task, {"t.csv.gz": _gz(TAPE)}, Same({"t.csv.gz": TAPE})),
    Case("csv-tsv-gzip", csv_task, {"t.tsv.gz": _gz(TAPE.replace(b",", b"\t"))}, Same({"t.csv": TAPE})),
    Case(
        "csv-quoted-everything",
        csv_task,
        {"t.csv": b'"seq","label"\n"MKTAYIAK","1.5"\n"QRQISFVK","-0.25"\n"SHFSRQ","2"\n'},
        Same({"t.csv": TAPE}),
    ),
    Case(
        "csv-quoted-comma",
        csv_task,
        {"t.csv": b'seq,note,label\nMKT,"a, b",1\n'},
        Ok(lambda r: r.sequences == ["MKT"] and r.labels == [1.0], "quoted delimiters"),
    ),
    Case("csv-excel-blank-rows", csv_task, {"t.csv": TAPE + b",\n,\n\n"}, Same({"t.csv": TAPE})),
    Case("csv-column-case", csv_task, {"t.csv": TAPE.replace(b"seq,label", b" Seq , LABEL ")}, Same({"t.csv": TAPE})),
    Case(
        "csv-int-labels",
        csv_int,
        {"t.csv": b"seq,label\nMKT,3\nMKV,4.0\n"},
        Ok(lambda r: r.labels == [3, 4], "integral floats, as pandas writes them, are class ids"),
    ),
    Case("csv-int-fraction", csv_int, {"t.csv": b"seq,label\nMKT,3\nMKV,4.5\n"}, Err(3, "not a valid int")),
    Case("csv-split-on-tape", flip, {"t.csv": TAPE}, Err(None, "needs a FLIP 'set' column")),
    Case(
        "flip-quoted-header",
        flip,
        {"t.csv": FLIP.replace(b"sequence,target,set,validation", b'"sequence","target","set","validation"', 1)},
        Same({"t.csv": FLIP}),
    ),
    Case("flip-unknown-set", flip, {"t.csv": _edit_line(FLIP, 3, b",train,", b",tset,")}, Err(3, "set value 'tset'")),
    Case(
        "flip-unknown-validation",
        flip,
        {"t.csv": _edit_line(FLIP, 3, b",train,", b",train,maybe")},
        Err(3, "validation value 'maybe'"),
    ),
    Case(
        "flip-skip-bad-splits",
        flip_skip,
        {"t.csv": _edit_line(_edit_line(FLIP, 3, b",train,", b",val,"), 4, b",train,", b",train,2")},
        Skips(198, (3, 4)),
    ),
    Case(
        "flip-shouting",
        flip,
        {"t.csv": FLIP.replace(b",train,", b", TRAIN ,").replace(b",True", b",TRUE")},
        Same({"t.csv": FLIP}),
    ),
    # ---- per-residue FASTA triples
    Case(
        "ss-length-mismatch",
        residues,
        _triple(l=TRIPLE["l.fasta"].replace(b"CHEE", b"CHE")),
        Err(3, "3 labels for a sequence of 4"),
    ),
    Case(
        "ss-bad-mask",
        residues,
        _triple(m=b">a\n111\n>b\n1121\n"),
        Err(3, r"mask .*m\.fasta:3 must be 4 characters of 0/1"),
    ),
    Case(
        "ss-duplicate-id",
        residues,
        _triple(s=TRIPLE["s.fasta"] + b">a\nMKT\n"),
        Err(5, r"duplicate id 'a' \(first at line 1\)"),
    ),
    Case("ss-missing-sequence", residues, _triple(s=b">a\nMKT\n"), Err(3, "no sequence with this id")),
    Case("ss-missing-mask", residues, _triple(m=b">a\n111\n"), Err(3, "no mask with this id")),
    Case("ss-empty-labels", residues, _triple(l=b""), Err(None, "no FASTA records")),
    Case(
        "ss-unknown-label-char",
        residues,
        _triple(l=TRIPLE["l.fasta"].replace(b"CHEE", b"CHEX")),
        Ok(lambda r: r[1] == "CEHX", "the classes are the labels file's own characters"),
    ),
    Case("ss-no-set", residues, _triple(l=TRIPLE["l.fasta"].replace(b"SET=train ", b"", 1)), Err(1, "no SET=")),
    Case("ss-empty-id", residues, _triple(l=b">\nCHE\n"), Err(1, "no id")),
    Case("ss-bad-residue", residues, _triple(s=b">a\nMKT\n>b\nMK\nT9\n"), Err(None, r"'9' at position 4 \(line 5\)")),
    Case("ss-skip-mismatch", residues_skip, _triple(l=TRIPLE["l.fasta"].replace(b"CHEE", b"CHE")), Skips(1, (3,))),
    Case(
        "ss-real-bom-crlf",
        residues,
        {name: BOM + data.replace(b"\n", b"\r\n") for name, data in SS_FILES.items()},
        Same(SS_FILES),
    ),
]


# ---------------------------------------------------------------- the sweep


def _canon(result):
    """A comparable form of any reader's result (origins such as ``file:line`` reduced to the line)."""
    if isinstance(result, (list, tuple)):
        return [_canon(item) for item in result]
    if isinstance(result, LabelledSequences):
        return (result.sequences, result.labels, [n.rsplit(":", 1)[-1] for n in result.names], result.skipped)
    if hasattr(result, "probabilities"):
        return (result.name, result.sequence, np.asarray(result.probabilities).tolist(), result.neff)
    if hasattr(result, "match_columns"):
        return (result.names, result.rows, result.sequences, [list(columns) for columns in result.match_columns])
    if hasattr(result, "header"):
        return (result.header, getattr(result, "sequence", getattr(result, "text", None)))
    return result


def _write(directory: Path, files: dict[str, bytes]) -> list[Path]:
    directory.mkdir()
    paths = []
    for name, data in files.items():
        path = directory / name
        path.write_bytes(_b(data))
        paths.append(path)
    return paths


def _outcome(case: Case, tmp_path: Path) -> tuple[str, str]:
    """(outcome, explanation) for one case."""
    paths = _write(tmp_path / "case", case.files)
    culprit = paths[0]
    if len(paths) > 1:  # the triple: the file that was changed must be named
        culprit = next((p for p in paths if case.files[p.name] != TRIPLE.get(p.name)), paths[-1])
    try:
        result = case.read(paths)
    except (ValueError, FileNotFoundError) as error:
        message = str(error)
        if isinstance(error, UnicodeError):
            return "unhelpful", f"raw {type(error).__name__}: {message}"
        if not isinstance(case.expect, Err):
            return "unhelpful", f"expected acceptance, got {type(error).__name__}: {message}"
        if culprit.name not in message:
            return "unhelpful", f"message does not name {culprit.name}: {message}"
        line = case.expect.line
        if line is not None and not re.search(rf":{line}\b|\bline {line}\b", message):
            return "unhelpful", f"message does not name line {line}: {message}"
        if case.expect.match and not re.search(case.expect.match, message):
            return "unhelpful", f"message does not match {case.expect.match!r}: {message}"
        return "clean error", message
    except Exception as error:  # any other exception type is exactly what the sweep hunts
        return "unhelpful", f"raw {type(error).__name__}: {error}"
    expect = case.expect
    if isinstance(expect, Err):
        return "unhelpful", f"silently accepted (expected an error): {str(_canon(result))[:200]}"
    if isinstance(expect, Skips):
        kept = len(result)
        lines = tuple(re.match(rf"{re.escape(str(culprit))}:(\d+)", m) for m in result.skipped)
        lines = tuple(int(match[1]) if match else None for match in lines)
        if kept != expect.rows or lines != expect.lines:
            return "unhelpful", f"kept {kept} rows, reported lines {lines}: {result.skipped}"
        return "reported", "; ".join(result.skipped)
    if isinstance(expect, Same):
        expected = case.read(_write(tmp_path / "clean", expect.clean))
        if _canon(result) != _canon(expected):
            return "unhelpful", "result differs from the clean file's (silent change or drop)"
        return "accepted", "same as the clean file"
    if not expect.check(result):
        return "unhelpful", f"accepted, but the documented check failed ({expect.why})"
    return "accepted", expect.why


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_input(case: Case, tmp_path: Path) -> None:
    outcome, explanation = _outcome(case, tmp_path)
    SUMMARY[outcome] += 1
    assert outcome != "unhelpful", f"{case.id}: {explanation}"


def test_sweep_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 80
    assert len({case.id for case in CASES}) == len(CASES)


def test_zz_summary(capsys) -> None:
    """Printed last: the outcome counts of the cases that ran in this session."""
    with capsys.disabled():
        counts = ", ".join(f"{outcome}: {SUMMARY[outcome]}" for outcome in ("clean error", "reported", "accepted"))
        print(f"\nmalformed-input sweep: {counts}, unhelpful: {SUMMARY['unhelpful']}")
    assert SUMMARY["unhelpful"] == 0
