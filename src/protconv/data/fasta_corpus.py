"""A pretraining corpus: one or more FASTA files read as a stream, with a bad-record policy and a held-out split.

The corpus is re-read from disk every epoch instead of being loaded, so UniRef50-sized files work with a constant
memory footprint; a validation split of the same files is chosen by a hash of each sequence, so it is stable across
epochs, processes and restarts without storing any index, and a protein that occurs twice never lands on both sides.
"""

from __future__ import annotations

import logging
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


@dataclass
class FastaCorpus:
    """Sequences of ``paths``, in file order, optionally restricted to one side of a hash split.

    ``invalid`` decides what a record with characters outside the alphabet does: ``"error"`` stops with the
    reader's message (file, line, record, position), ``"skip"`` drops it and counts it in ``skipped``,
    ``"X"`` maps unknown characters to X.
    """

    paths: Sequence[str | Path]
    invalid: InvalidPolicy = "error"
    held_out_fraction: float = 0.0
    side: Side = "all"
    split_seed: int = 0
    skipped: int = field(default=0, init=False)

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
        on_invalid = self._count_skipped if self.invalid == "skip" else None
        unknown = "X" if self.invalid == "X" else "error"
        try:
            for record in read_fasta(path, unknown=unknown, on_invalid=on_invalid):
                yield record.sequence
        except UnicodeDecodeError as error:
            raise InvalidSequenceError(
                f"{path}: not a text FASTA file ({error.reason} at byte {error.start})"
            ) from None

    def _count_skipped(self, error: InvalidSequenceError) -> None:
        self.skipped += 1
        if self.skipped <= 5:
            logger.warning("skipping invalid record: %s", error)

    def _keeps(self, sequence: str) -> bool:
        if self.side == "all":
            return True
        held_out = in_held_out_split(sequence, self.held_out_fraction, self.split_seed)
        return held_out == (self.side == "validation")
