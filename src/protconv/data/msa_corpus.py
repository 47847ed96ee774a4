"""A profile-prediction corpus: MSAs and ready-made profile files as a stream of proteins with per-residue targets.

Every member of an alignment becomes a training example whose residues carry their match column's profile
(Sturmfels et al. 2020). A profile is computed once per file and cached as ``.npz`` under ``cache_dir``, keyed by
a hash of the file's bytes and the profile settings, so later epochs, resumed runs and other processes read the
cache instead of recomputing; an edited file gets a new key, never a stale profile.

Members are not expanded into (length, 20) target arrays up front (a 10,000 x 1,000 alignment would take
800 MB): a ``ProfiledSequence`` holds its residues, one row index per residue and a reference to its alignment's
shared profile table, and targets are gathered per batch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .choices import check_choice
from .fasta_corpus import Side
from .fasta_index import new_staging
from .held_out import in_held_out_split
from .msa import ALIGNMENT_SUFFIXES, format_suffix, read_alignment
from .profile_files import read_profile_file
from .profiles import DEFAULT_PSEUDOCOUNT_WEIGHT, InsertPolicy, Prior, compute_profile, target_table

logger = logging.getLogger(__name__)

PROFILE_FILE_SUFFIXES: tuple[str, ...] = (".hhm", ".hmm")
#: Bumped whenever the cached arrays change meaning, so that old caches are ignored rather than misread.
_CACHE_VERSION = 1


@dataclass(frozen=True, eq=False)
class ProfiledSequence:
    """A protein whose residue ``k`` has the target ``table[rows[k]]``.

    ``len()`` and slicing behave like the residue string, so token-budget batching and random cropping treat it
    exactly like a plain sequence; ``str()`` gives the residues.
    """

    residues: str
    rows: np.ndarray
    table: np.ndarray

    def __len__(self) -> int:
        return len(self.residues)

    def __getitem__(self, window: slice) -> ProfiledSequence:
        return ProfiledSequence(self.residues[window], self.rows[window], self.table)

    def __str__(self) -> str:
        return self.residues

    def targets(self) -> np.ndarray:
        """(len, 20) float32: each residue's column distribution (all zeros where it has no target)."""
        return self.table[self.rows]


@dataclass
class _Family:
    """What the cache stores for one file: members' residues, their rows into ``profiles`` (-1: insert)."""

    sequences: list[str]
    rows: list[np.ndarray]
    profiles: np.ndarray
    neff: float


def find_profile_sources(paths: Sequence[str | Path]) -> list[Path]:
    """MSA and profile files among ``paths``, directories expanded (sorted, recursively) to the files they hold.

    A named file with an unknown extension is an error; files of other kinds inside a directory (READMEs, logs)
    are passed over, but a directory with none at all is an error.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
            if not inside:
                raise FileNotFoundError(f"{path}: no MSA or profile files ({', '.join(_all_suffixes())}) inside")
            found.extend(inside)
        elif path.is_file():
            if _kind(path) is None:
                raise ValueError(f"{path}: not an MSA or profile file; expected one of {', '.join(_all_suffixes())}")
            found.append(path)
        else:
            raise FileNotFoundError(f"MSA/profile path not found: {path}")
    return found


def _all_suffixes() -> tuple[str, ...]:
    return ALIGNMENT_SUFFIXES + PROFILE_FILE_SUFFIXES


def _kind(path: Path) -> str | None:
    last = format_suffix(path)
    if last in PROFILE_FILE_SUFFIXES:
        return "profile"
    if last in ALIGNMENT_SUFFIXES:
        return "alignment"
    return None


@dataclass
class MSACorpus:
    """Members of every MSA and the model sequences of every profile file in ``paths``, as ``ProfiledSequence``.

    ``inserts`` decides the targets of insert residues (lower case in A3M, ``.`` columns of a Stockholm RF):
    ``"background"`` (the insert-state emissions of a profile HMM) or ``"mask"`` (no target, skipped by the
    loss). ``held_out_fraction``/``side`` split by a hash of each member's residues, as ``FastaCorpus`` does,
    so members of one family can fall on both sides: validation then measures within-family generalisation.
    Hold out whole families with separate validation files instead.
    """

    paths: Sequence[str | Path]
    cache_dir: str | Path | None = None
    prior: Prior = "background"
    pseudocount_weight: float = DEFAULT_PSEUDOCOUNT_WEIGHT
    inserts: InsertPolicy = "background"
    held_out_fraction: float = 0.0
    side: Side = "all"
    split_seed: int = 0
    #: Show a progress bar while ``prepare`` computes or reads profiles (only ever on a terminal). Pass True on one
    #: process only: under ``accelerate launch`` every process prepares the same files.
    progress: bool = False
    skipped: int = field(default=0, init=False)  # for symmetry with FastaCorpus: nothing is ever skipped here
    _files: list[Path] = field(default_factory=list, init=False, repr=False)
    _memory: dict[Path, _Family] = field(default_factory=dict, init=False, repr=False)
    _keys: dict[Path, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("inserts", self.inserts, InsertPolicy)
        check_choice("prior", self.prior, Prior)
        self._files = find_profile_sources(self.paths)

    def prepare(self) -> None:
        """Compute and cache every file's profile now (otherwise the first epoch does it on the way)."""
        # disable=None: tqdm draws only on a terminal, so a log file gets no bar lines; leave=False: once done,
        # the bar gives way to the loop's own.
        files = tqdm(self._files, desc="MSA profiles", unit="file", disable=None if self.progress else True,
                     leave=False, dynamic_ncols=True)  # fmt: skip
        for path in files:
            self._family(path)

    def digests(self) -> dict[str, str]:
        """``{path: content key}`` of every file (the cache key: hashed once per run, whether cached or not)."""
        return {str(path): self._key(path) for path in self._files}

    def __iter__(self) -> Iterator[ProfiledSequence]:
        for path in self._files:
            family = self._family(path)
            if not family.sequences:
                raise ValueError(f"{path}: no member sequence with residues")
            table = target_table(family.profiles, self.inserts)
            for residues, rows in zip(family.sequences, family.rows, strict=True):
                if self._keeps(residues):
                    yield ProfiledSequence(residues, rows, table)

    def _keeps(self, residues: str) -> bool:
        if self.side == "all":
            return True
        held_out = in_held_out_split(residues, self.held_out_fraction, self.split_seed)
        return held_out == (self.side == "validation")

    # ------------------------------------------------------------------------------------------ the cache
    def _family(self, path: Path) -> _Family:
        if self.cache_dir is None:
            if path not in self._memory:
                self._memory[path] = self._compute(path)
            return self._memory[path]
        cached = Path(self.cache_dir) / f"{path.name}.{self._key(path)}.npz"
        if cached.is_file():
            try:
                return _load(cached)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:  # truncated, or foreign: recompute
                logger.warning("ignoring unreadable profile cache %s (%s); recomputing", cached, error)
        family = self._compute(path)
        _save(family, cached)
        logger.info("cached the profile of %s (%d sequences, Neff %.1f) in %s", path, len(family.sequences),
                    family.neff, cached)  # fmt: skip
        return family

    def _key(self, path: Path) -> str:
        """Hash of the file's bytes and of every setting the cached arrays depend on (computed once per run)."""
        if path not in self._keys:
            digest = hashlib.sha256()
            settings = {"version": _CACHE_VERSION, "prior": self.prior, "pseudocounts": self.pseudocount_weight}
            digest.update(json.dumps(settings, sort_keys=True).encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            self._keys[path] = digest.hexdigest()[:32]
        return self._keys[path]

    def _compute(self, path: Path) -> _Family:
        if _kind(path) == "profile":
            return _family_of_profile_file(path)
        alignment = read_alignment(path)
        profile = compute_profile(alignment, self.pseudocount_weight, self.prior)
        keep = [i for i, sequence in enumerate(alignment.sequences) if sequence]
        return _Family(
            [alignment.sequences[i] for i in keep],
            [alignment.match_columns[i].astype(np.int32) for i in keep],
            profile.probabilities.astype(np.float32),
            float(profile.neff),
        )


def _family_of_profile_file(path: Path) -> _Family:
    """Each model of a ``.hhm``/``.hmm`` file: its sequence, residue ``k`` on the model's ``k``-th profile row."""
    records = read_profile_file(path)
    offsets = np.cumsum([0] + [len(record.sequence) for record in records])
    return _Family(
        [record.sequence for record in records],
        [np.arange(start, start + len(r.sequence), dtype=np.int32) for start, r in zip(offsets, records, strict=False)],
        np.concatenate([record.probabilities for record in records]).astype(np.float32),
        float(np.mean([record.neff for record in records if record.neff is not None] or [np.nan])),
    )


def _save(family: _Family, path: Path) -> None:
    """Write atomically: into a staging folder named like every other (host and pid: a killed writer's is removed
    by the next save in this cache, as are the ``.partial-*.npz`` files of older versions), then renamed into
    place, so no reader ever sees half a cache file (processes racing to fill the same entry write identical
    bytes; the last rename wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(s) for s in family.sequences], dtype=np.int64)
    residues = np.frombuffer("".join(family.sequences).encode("ascii"), dtype=np.uint8)
    staging = new_staging(path)
    try:
        with open(staging / "profile.npz", "wb") as stream:
            np.savez(
                stream,
                residues=residues,
                lengths=lengths,
                rows=np.concatenate(family.rows) if family.rows else np.zeros(0, np.int32),
                profiles=family.profiles,
                neff=np.float64(family.neff),
            )
        os.replace(staging / "profile.npz", path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load(path: Path) -> _Family:
    with np.load(path, allow_pickle=False) as data:
        lengths = data["lengths"]
        text = data["residues"].tobytes().decode("ascii")
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        rows = data["rows"]
        return _Family(
            [text[a:b] for a, b in itertools.pairwise(bounds)],
            [rows[a:b] for a, b in itertools.pairwise(bounds)],
            data["profiles"],
            float(data["neff"]),
        )


class MSARecords:
    """The members of an :class:`MSACorpus` as a record source of the pretraining pipeline: ``lengths`` for
    planning, ``read`` for a batch's members. Families are small and their profiles are cached arrays, so every
    member of the corpus's side is held in memory (residues, row indices and a shared per-family target table)."""

    skipped = 0  # nothing is skipped in alignments (their readers are strict)

    def __init__(self, corpus: MSACorpus) -> None:
        corpus.prepare()
        self.corpus = corpus
        self.members: list[ProfiledSequence] = list(corpus)
        self.lengths = np.array([len(member) for member in self.members], dtype=np.int64)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.members)

    def read(self, records: np.ndarray) -> list[ProfiledSequence]:
        self.reads += len(records)
        return [self.members[i] for i in np.asarray(records, dtype=np.int64).tolist()]

    def record_ids(self) -> list[str]:
        """Members have no identifiers of their own: ``file:member number``."""
        return [f"msa:{i}" for i in range(len(self.members))]

    def digests(self) -> dict[str, str]:
        """Each MSA or profile file's content key (its bytes and the profile settings), by path: what a checkpoint
        records so that a resumed run refuses an alignment edited, added to or replaced since."""
        return self.corpus.digests()
