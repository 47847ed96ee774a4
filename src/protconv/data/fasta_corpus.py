"""A pretraining corpus: one or more FASTA files read as a stream, with a bad-record policy and a held-out split.

The corpus is re-read from disk every epoch instead of being loaded, so UniRef50-sized files work with a constant
memory footprint; a validation split of the same files is chosen by a hash of each sequence, so it is stable across
epochs, processes and restarts without storing any index, and a protein that occurs twice never lands on both sides
(the rule is :mod:`protconv.data.held_out`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..tokenization.validation import InvalidSequenceError, UnknownPolicy
from .choices import check_choice
from .fasta import read_fasta
from .fasta_index import FastaIndex, open_index
from .held_out import in_held_out_split  # its home; still importable from here for one release
from .nucleotides import NUCLEOTIDE_MIN_LENGTH, NUCLEOTIDE_SAMPLE, NucleotideCheck

logger = logging.getLogger(__name__)

InvalidPolicy = Literal["error", "skip", "X"]
Side = Literal["all", "train", "validation"]


def _nucleotide_check(path: Path) -> NucleotideCheck:
    return NucleotideCheck(path, "Pretraining expects", "translate the file or leave it out", logger)


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
        check_choice("invalid", self.invalid, InvalidPolicy)
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
        unknown: UnknownPolicy = "X" if self.invalid == "X" else "error"
        looks_like_dna = _nucleotide_check(path) if path not in self._checked else None
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


#: Invalid records named in the log under ``invalid="skip"`` (the rest are only counted).
_LOGGED_SKIPS = 5


class FastaRecords:
    """Records of ``paths`` read at random through their indexes (:mod:`protconv.data.fasta_index`): the record
    source of the pretraining pipeline, with the policies and split of :class:`FastaCorpus`.

    Everything is decided when it is built, from the indexes alone: ``invalid="error"`` raises the first invalid
    record's error (file, line, record, position), as reading the stream would; ``"skip"`` leaves invalid records
    out, counts them in ``skipped`` and logs the first few; ``"X"`` keeps them with unknown characters as X (a
    record without residues is still an error). ``held_out_fraction``/``side`` select one side of the same hash
    split as ``FastaCorpus``. Record ``i`` of this source is the ``i``-th kept record in file order; ``lengths``
    holds their residue counts and ``read`` returns their cleaned residues, reading only those records' bytes.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        invalid: InvalidPolicy = "error",
        held_out_fraction: float = 0.0,
        side: Side = "all",
        split_seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        check_choice("invalid", invalid, InvalidPolicy)
        if not paths:
            raise ValueError("no FASTA files given")
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            if not path.is_file():
                raise FileNotFoundError(f"FASTA file not found: {path}")
        self.invalid = invalid
        self.unknown: UnknownPolicy = "X" if invalid == "X" else "error"
        self.skipped = 0
        self.reads = 0
        self.indexes: list[FastaIndex] = []
        kept: list[np.ndarray] = []
        for path in self.paths:
            index = open_index(path, cache_dir)
            keep = self._apply_policy(index)
            if side != "all":
                held = index.held_out(held_out_fraction, split_seed)
                keep &= held if side == "validation" else ~held
            if not keep.any() and side != "validation":
                raise InvalidSequenceError(f"{path}: no usable FASTA records (empty file, or not FASTA)")
            if side != "validation":  # warned once, by the training side
                self._check_nucleotides(index, path)
            self.indexes.append(index)
            kept.append(np.flatnonzero(keep).astype(np.uint32 if len(index) < 2**32 else np.int64))
        self._kept = kept
        self._starts = np.cumsum([0] + [len(k) for k in kept])
        self.lengths = np.concatenate([np.asarray(i.lengths)[k] for i, k in zip(self.indexes, kept, strict=True)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _apply_policy(self, index: FastaIndex) -> np.ndarray:
        keep = np.ones(len(index), dtype=bool)
        if not len(index.invalid):
            return keep
        if self.invalid == "error":
            raise index.error(int(index.invalid[0]))
        if self.invalid == "X":
            empty = index.invalid[np.asarray(index.lengths)[index.invalid] == 0]
            if len(empty):
                raise index.error(int(empty[0]))
            return keep
        keep[index.invalid] = False
        for record in index.invalid[: max(0, _LOGGED_SKIPS - self.skipped)].tolist():
            logger.warning("skipping invalid record: %s", index.error(record))
        self.skipped += len(index.invalid)
        return keep

    def _check_nucleotides(self, index: FastaIndex, path: Path) -> None:
        """The DNA/RNA warning of ``FastaCorpus``, from the file's first records of 20+ residues."""
        lengths = np.asarray(index.lengths[: 50 * NUCLEOTIDE_SAMPLE])
        candidates = np.flatnonzero(lengths >= NUCLEOTIDE_MIN_LENGTH)
        candidates = np.setdiff1d(candidates, index.invalid)[:NUCLEOTIDE_SAMPLE]
        check = _nucleotide_check(path)
        for record in candidates.tolist():
            if check.add(index.sequence(record, "X")):
                return
        check.finish()

    def digests(self) -> dict[str, str]:
        """Each file's record digest (``FastaIndex.digest``), by the path as given: what a checkpoint records so
        that a resumed run refuses a corpus that changed."""
        return {str(path): index.digest() for path, index in zip(self.paths, self.indexes, strict=True)}

    def check_unchanged(self) -> None:
        """Raise ``FastaFormatError`` naming a file that was truncated, rewritten or replaced since it was opened."""
        for index in self.indexes:
            index.check_unchanged()

    def locate(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(file number, record number in that file's index) of each of this source's ``records``."""
        records = np.asarray(records, dtype=np.int64)
        files = np.searchsorted(self._starts, records, "right") - 1
        local = np.empty(len(records), dtype=np.int64)
        for number in np.unique(files).tolist():
            mine = files == number
            local[mine] = self._kept[number][records[mine] - self._starts[number]]
        return files, local

    def read(self, records: np.ndarray) -> list[str]:
        """Cleaned residues of ``records`` (this source's numbering), reading only their bytes."""
        files, local = self.locate(records)
        self.reads += len(local)
        if len(self.indexes) == 1:
            return self.indexes[0].sequences(local, self.unknown)
        found: list[str] = [""] * len(local)
        for number in np.unique(files).tolist():
            mine = np.flatnonzero(files == number)
            for at, sequence in zip(mine.tolist(), self.indexes[number].sequences(local[mine], self.unknown),
                                    strict=True):  # fmt: skip
                found[at] = sequence
        return found

    def record_ids(self) -> list[str]:
        """The first word of every kept record's header (cluster files map these ids), in this source's order."""
        ids: list[str] = []
        for index, keep in zip(self.indexes, self._kept, strict=True):
            headers = index.headers()
            ids.extend(headers[i].split(maxsplit=1)[0] if headers[i] else "" for i in keep.tolist())
        return ids

    def headers(self) -> list[str]:
        """Every kept record's header, in this source's order."""
        found: list[str] = []
        for index, keep in zip(self.indexes, self._kept, strict=True):
            headers = index.headers()
            found.extend(headers[i] for i in keep.tolist())
        return found
