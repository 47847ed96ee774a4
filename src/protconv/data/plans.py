"""Epoch plans: which records go into which token-budget batch, in which order, on which process, computed from
record lengths alone.

Every process computes the same plan from ``(seed, epoch)`` and the lengths (no communication), then reads only
the records of its own batches. A plan is:

1. the epoch's records: all of them, or one member per cluster drawn with the epoch's generator;
2. a seeded permutation of those records (a global shuffle, not a shuffle inside a streaming pool);
3. windows of ``window`` consecutive records of that permutation, each sorted by (cropped) length and cut
   greedily into batches of at most ``max_tokens`` padded tokens, so padding stays small;
4. a seeded permutation of all the batches, so training sees no short-to-long ramp;
5. dealt in rounds of ``world_size``: batch ``k * world_size + rank`` is batch ``k`` of process ``rank``. In the
   last, incomplete round the processes without a batch get a filler (a short synthetic sequence whose loss is
   ignored) so that every process takes the same number of steps. Every record of the epoch is in exactly one
   batch.

Resuming at batch ``k`` costs the plan (a few numpy passes over the lengths) and nothing else: no record before
``k`` is read. Long records are cropped to ``max_length`` at a random offset that is a pure function of
``(seed, epoch, record)`` (a hash, so each process crops only its own records).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batching import BatchShape, cut_sorted  # their home; re-exported here, where the plans first held them

#: Residues of a filler sequence (a batch that only keeps a process in step; its loss is ignored).
FILLER_SEQUENCE = "MKTAYIAKQR"
_PLAN_STREAM = 0x504C414E  # mixes into the epoch generator's seed, apart from masking and cropping streams
_CROP_STREAM = 0x43524F50


@dataclass(frozen=True)
class Clusters:
    """Records grouped into clusters: cluster ``c`` is ``members[starts[c]:starts[c] + sizes[c]]``."""

    members: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> Clusters:
        """Clusters from one integer label per record (records with equal labels form a cluster)."""
        labels = np.asarray(labels)
        members = np.argsort(labels, kind="stable")
        sorted_labels = labels[members]
        starts = (
            np.flatnonzero(np.concatenate([[True], sorted_labels[1:] != sorted_labels[:-1]]))
            if len(labels)
            else (np.zeros(0, dtype=np.int64))
        )
        sizes = np.diff(np.append(starts, len(labels)))
        return cls(members, starts, sizes)

    def __len__(self) -> int:
        return len(self.starts)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One member of every cluster, uniformly within each."""
        picks = self.starts + (rng.random(len(self.starts)) * self.sizes).astype(np.int64)
        return self.members[picks]


@dataclass(frozen=True)
class EpochPlan:
    """Batches in training order: batch ``b`` holds records ``order[begins[b]:ends[b]]``."""

    order: np.ndarray
    begins: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.begins)

    def batch(self, number: int) -> np.ndarray:
        return self.order[self.begins[number] : self.ends[number]]

    def rounds(self, world_size: int) -> int:
        """Batches per process (the last round padded with fillers)."""
        return -(-len(self) // world_size)

    def share(self, world_size: int, rank: int, index: int) -> np.ndarray | None:
        """Records of batch ``index`` of process ``rank``; ``None`` for a filler."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, {world_size})")
        number = index * world_size + rank
        return self.batch(number) if number < len(self) else None

    def tokens(self, lengths: np.ndarray, shape: BatchShape) -> tuple[int, int]:
        """(real tokens, padded tokens) of the whole plan, for measuring padding."""
        widths = shape.widths(lengths[self.order])
        starts = np.zeros(len(widths) + 1, dtype=np.int64)
        np.cumsum(widths, out=starts[1:])
        real = int(starts[-1])
        sizes = self.ends - self.begins
        # The longest member of a batch is its last one (each window is sorted by width).
        padded = int((sizes * widths[self.ends - 1]).sum()) if len(self) else 0
        return real, padded


def plan_epoch(
    lengths: np.ndarray,
    shape: BatchShape,
    seed: int,
    epoch: int,
    window: int,
    clusters: Clusters | None = None,
) -> EpochPlan:
    """The plan of ``epoch`` over records ``0..len(lengths) - 1`` (or one member of each of ``clusters``)."""
    if window < 1:
        raise ValueError(f"the length-grouping window must be positive, got {window}")
    rng = np.random.default_rng([seed, epoch, _PLAN_STREAM])
    records = clusters.sample(rng) if clusters is not None else np.arange(len(lengths), dtype=np.int64)
    order = records[rng.permutation(len(records))]
    begins, ends = _window_batches(order, lengths, shape, window)
    shuffled = rng.permutation(len(begins))
    return EpochPlan(order, begins[shuffled], ends[shuffled])


def plan_in_order(records: np.ndarray, lengths: np.ndarray, shape: BatchShape) -> EpochPlan:
    """A fixed plan (validation): ``records`` sorted by length as one window, batches from short to long."""
    order = np.array(records, dtype=np.int64)
    begins, ends = _window_batches(order, lengths, shape, max(len(order), 1))
    return EpochPlan(order, begins, ends)


def _sorted_windows(order: np.ndarray, lengths: np.ndarray, shape: BatchShape, window: int) -> np.ndarray:
    """``order`` with every window of ``window`` records stably sorted by width (in place)."""
    widths = shape.widths(lengths[order])
    if len(widths) and widths.max() < 2**16:  # numpy sorts 16-bit integers stably by radix sort
        widths = widths.astype(np.uint16)
    for start in range(0, len(order), window):
        part = slice(start, start + window)
        order[part] = order[part][np.argsort(widths[part], kind="stable")]
    return order


def _window_batches(
    order: np.ndarray, lengths: np.ndarray, shape: BatchShape, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sort each window of ``order`` by width (in place) and cut it greedily: (begins, ends) of the batches."""
    _sorted_windows(order, lengths, shape, window)
    widths = shape.widths(lengths[order])
    begins, ends = [], []
    for start in range(0, len(order), window):
        cut = cut_sorted(widths[start : start + window], shape.max_tokens)
        begins.append(cut[:-1] + start)
        ends.append(cut[1:] + start)
    if not begins:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(begins), np.concatenate(ends)


def crop_offsets(lengths: np.ndarray, room: int, seed: int, stream: int, records: np.ndarray) -> np.ndarray:
    """Start of the ``room``-residue window of each record (0 when it fits): uniform over the possible starts and a
    pure function of ``(seed, stream, record)`` (``stream`` is the epoch, or a validation constant)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    spare = np.maximum(lengths - room, 0)
    hashed = mix64(seed, stream, _CROP_STREAM, np.asarray(records, dtype=np.uint64))
    return (hashed % (spare + 1).astype(np.uint64)).astype(np.int64)


def mix64(*keys: int | np.ndarray) -> np.ndarray:
    """A 64-bit hash (splitmix64 finaliser, chained) of integer keys; arrays broadcast."""
    state = np.zeros(1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for key in keys:
            value = np.asarray(key).astype(np.uint64) if isinstance(key, np.ndarray) else np.uint64(key % 2**64)
            state = state ^ value
            state = state + np.uint64(0x9E3779B97F4A7C15)
            state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            state = state ^ (state >> np.uint64(31))
    return state
