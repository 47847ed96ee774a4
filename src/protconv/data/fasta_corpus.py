"""A pretraining corpus: one or more FASTA files read as a stream, with a bad-record policy and a held-out split.

The corpus is re-read from disk every epoch instead of being loaded, so UniRef50-sized files work with a constant
memory footprint; a validation split of the same files is chosen by a hash of each sequence, so it is stable across
epochs, processes and restarts without storing any index, and a protein that occurs twice never lands on both sides.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..tokenization.validation import InvalidSequenceError
from .fasta import read_fasta

logger = logging.getLogger(__name__)

InvalidPolicy = Literal["error", "skip", "X"]
Side = Literal["all", "train", "validation"]

_HASH_BUCKETS = 1_000_000


def in_held_out_split(sequence: str, fraction: float, seed: int = 0) -> bool:
    """Whether ``sequence`` belongs to the held-out ``fraction``: a pure function of its residues and ``seed``."""
    if fraction <= 0:
        return False
    bucket = zlib.crc32(f"{seed}:{sequence}".encode()) % _HASH_BUCKETS
    return bucket < fraction * _HASH_BUCKETS


_NUCLEOTIDES = re.compile("[ACGTUN]+")
#: A file is flagged when at least this fraction of its first ``_NUCLEOTIDE_SAMPLE`` records of at least
#: ``_NUCLEOTIDE_MIN_LENGTH`` residues consist of A/C/G/T/U/N only (a real protein of 20+ residues almost never does).
_NUCLEOTIDE_FRACTION = 0.9
_NUCLEOTIDE_SAMPLE = 100
_NUCLEOTIDE_MIN_LENGTH = 20


class _NucleotideCheck:
    """Counts a file's first records that look like DNA/RNA and warns once if most of them do.

    Nucleotide letters are valid amino-acid letters, so a DNA FASTA passes validation and would silently be
    learned as protein; this is the one check that can notice it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = 0
        self.nucleotide = 0

    def add(self, sequence: str) -> bool:
        """Count one record; True once the verdict is in (the sample is complete)."""
        if len(sequence) < _NUCLEOTIDE_MIN_LENGTH:
            return False
        self.seen += 1
        self.nucleotide += _NUCLEOTIDES.fullmatch(sequence) is not None
        if self.seen < _NUCLEOTIDE_SAMPLE:
            return False
        self.finish()
        return True

    def finish(self) -> None:
        if self.seen and self.nucleotide >= _NUCLEOTIDE_FRACTION * self.seen:
            logger.warning(
                "%s looks like a nucleotide FASTA: %d of its first %d records of %d+ letters hold only A/C/G/T/U/N. "
                "Pretraining expects proteins (nucleotide letters are valid amino-acid letters, so nothing else "
                "stops them); translate the file or leave it out.",
                self.path, self.nucleotide, self.seen, _NUCLEOTIDE_MIN_LENGTH,
            )  # fmt: skip


@dataclass
class FastaCorpus:
    """Sequences of ``paths``, in file order, optionally restricted to one side of a hash split.

    ``invalid`` decides what a record with characters outside the alphabet does: ``"error"`` stops with the
    reader's message (file, line, record, position), ``"skip"`` drops it and counts it in ``skipped``,
    ``"X"`` maps unknown characters to X. A file whose records look like DNA/RNA (90% of its first 100 records
    of 20+ letters hold only A/C/G/T/U/N) is read anyway, as those letters are amino acids too, but a warning
    naming it is logged once per corpus.
    """

    paths: Sequence[str | Path]
    invalid: InvalidPolicy = "error"
    held_out_fraction: float = 0.0
    side: Side = "all"
    split_seed: int = 0
    skipped: int = field(default=0, init=False)
    _checked: set[Path] = field(default_factory=set, init=False, repr=False)  # files checked for nucleotides

    def __post_init__(self) -> None:
        if self.invalid not in ("error", "skip", "X"):
            raise ValueError(f"invalid must be 'error', 'skip' or 'X', got {self.invalid!r}")
        if not self.paths:
            raise ValueError("no FASTA files given")
        for path in self.paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"FASTA file not found: {path}")

    def __iter__(self) -> Iterator[str]:
        """Yield cleaned sequences; raise if a whole file holds no record, since that is never intended."""
        self.skipped = 0
        for path in self.paths:
            yielded = 0
            for sequence in self._read(Path(path)):
                if self._keeps(sequence):
                    yielded += 1
                    yield sequence
            if yielded == 0 and self.side != "validation":
                raise InvalidSequenceError(f"{path}: no usable FASTA records (empty file, or not FASTA)")

    def _read(self, path: Path) -> Iterator[str]:
        """Cleaned sequences of one file (bad bytes or truncated gzip raise ``FastaFormatError`` with the line)."""
        on_invalid = self._count_skipped if self.invalid == "skip" else None
        unknown = "X" if self.invalid == "X" else "error"
        looks_like_dna = _NucleotideCheck(path) if path not in self._checked else None
        for record in read_fasta(path, unknown=unknown, on_invalid=on_invalid):
            if looks_like_dna is not None and looks_like_dna.add(record.sequence):
                self._checked.add(path)
                looks_like_dna = None
            yield record.sequence
        if looks_like_dna is not None:
            looks_like_dna.finish()
            self._checked.add(path)

    def _count_skipped(self, error: InvalidSequenceError) -> None:
        self.skipped += 1
        if self.skipped <= 5:
            logger.warning("skipping invalid record: %s", error)

    def _keeps(self, sequence: str) -> bool:
        if self.side == "all":
            return True
        held_out = in_held_out_split(sequence, self.held_out_fraction, self.split_seed)
        return held_out == (self.side == "validation")
