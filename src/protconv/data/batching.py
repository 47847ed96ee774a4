"""Token-budget batches from a stream of proteins, and their deterministic split across processes.

Protein lengths span two orders of magnitude, so a fixed number of sequences per batch either wastes most of a
batch on padding or runs out of memory on the long ones. Batches here hold up to ``max_tokens`` tokens *including*
padding, from sequences of similar length: the stream is read in pools, each pool is cropped, sorted by length and
cut greedily, and the batches are shuffled so that training does not see a short-to-long ramp.

The budget (``BatchShape``) and the greedy cut (``cut_sorted``) are those of every planner: this streaming batcher,
the epoch plans of :mod:`protconv.data.plans`, and the longest-first batches of inference
(``longest_first_batches``), so that a budget means the same number of padded tokens everywhere.

Everything random is a pure function of ``(seed, epoch, pool)``, so every process computes the same plan without
talking to the others, and a resumed run can skip exactly the batches it has already trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

import numpy as np

from .choices import check_choice
from .msa_corpus import ProfiledSequence

#: What a greedy cut does with a sequence wider than the budget: refuse it (training crops first, so one is a
#: planning bug), or give it a batch of its own (inference never crops, and a device may still hold it).
Oversized = Literal["error", "alone"]


@dataclass(frozen=True)
class Batch:
    """Residue strings (already cropped) of one batch. ``indices`` are the sequences' positions in the epoch's
    stream (for checking coverage); a ``filler`` batch only keeps a process in step and carries no loss."""

    sequences: tuple[str | ProfiledSequence, ...]
    indices: tuple[int, ...]
    filler: bool = False


def check_token_budget(max_tokens: int, max_length: int, special_tokens: int) -> None:
    """A budget must leave room for residues and hold one sequence of maximal length (every planner's check)."""
    if max_length <= special_tokens:
        raise ValueError(f"max_length {max_length} leaves no room for residues")
    if max_tokens < max_length:
        raise ValueError(
            f"max_tokens ({max_tokens}) must be at least max_length ({max_length}): "
            "a batch must be able to hold one sequence of maximal length"
        )


@dataclass(frozen=True)
class BatchShape:
    """Token budget of a batch: ``max_tokens`` padded tokens, sequences of at most ``max_length`` tokens of which
    ``special_tokens`` are added by the tokenizer (so ``max_length - special_tokens`` residues)."""

    max_tokens: int
    max_length: int
    special_tokens: int = 0

    def __post_init__(self) -> None:
        check_token_budget(self.max_tokens, self.max_length, self.special_tokens)

    @property
    def room(self) -> int:
        """Residues per sequence after cropping."""
        return self.max_length - self.special_tokens

    def widths(self, lengths: np.ndarray) -> np.ndarray:
        """Tokens of each record after cropping and framing."""
        return np.minimum(lengths.astype(np.int64), self.room) + self.special_tokens


def cut_sorted(widths: np.ndarray, max_tokens: int, oversized: Oversized = "error") -> np.ndarray:
    """Greedy token-budget cut of sorted ``widths``: batch boundaries ``[0, ..., len(widths)]``.

    Each batch takes the most records whose count times the batch's widest member fits ``max_tokens``; the widest
    is the last member when ``widths`` do not decrease (training: short to long) and the first when they do not
    increase (inference: longest first). A zero width costs nothing, so zero-width records are never cut apart.
    A record wider than the budget raises, or with ``oversized="alone"`` is a batch of its own.

    Non-decreasing: with ``first(b) = b - capacity(b)`` (``capacity = max_tokens // widths[b - 1]``), the smallest
    start from which ``b`` is reachable, strictly increasing in ``b``, the greedy end of every start is one
    ``searchsorted``. Non-increasing: a batch starting at ``a`` ends at ``a + capacity(a)``. Either way the chain
    of batches is then followed in Python, one step per batch."""
    check_choice("oversized", oversized, Oversized)
    n = len(widths)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    widths = np.asarray(widths, dtype=np.int64)
    widest = int(widths.max())
    if oversized == "error" and widest > max_tokens:
        raise ValueError(f"a record of {widest} tokens does not fit max_tokens={max_tokens}")
    capacity = np.clip(np.where(widths > 0, max_tokens // np.maximum(widths, 1), n), 1, n)
    starts = np.arange(n, dtype=np.int64)
    if bool((widths[1:] >= widths[:-1]).all()):
        ends = starts + 1
        following = ends[np.searchsorted(ends - capacity, starts, "right") - 1].tolist()
    elif bool((widths[1:] <= widths[:-1]).all()):
        following = np.minimum(starts + capacity, n).tolist()
    else:
        raise ValueError("cut_sorted needs widths sorted one way (non-decreasing or non-increasing)")
    cuts, position = [0], 0
    while position < n:
        position = following[position]
        cuts.append(position)
    return np.asarray(cuts, dtype=np.int64)


def longest_first_batches(lengths: Sequence[int], max_tokens: int, special_tokens: int = 0) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches of at most ``max_tokens`` padded tokens (special tokens
    included), longest first (ties in index order), each batch of similar lengths; no sequence is cropped, and
    one longer than the budget is a batch of its own. Longest first: a budget too large for the device fails at
    once, not at the end of a long run."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens_per_batch must be positive, got {max_tokens}")
    sizes = np.asarray(lengths, dtype=np.int64).reshape(-1)
    order = np.argsort(-sizes, kind="stable")
    cuts = cut_sorted(sizes[order] + special_tokens, max_tokens, "alone").tolist()
    return [order[begin:end].tolist() for begin, end in pairwise(cuts)]


@dataclass(frozen=True)
class TokenBudgetBatcher:
    """Cuts a sequence stream into batches of at most ``max_tokens`` padded tokens.

    ``max_length`` counts tokens including the ``special_tokens`` the tokenizer adds to each sequence; longer
    proteins are randomly cropped to fit (a different window each epoch), as CARP cropped to 1024.
    """

    max_tokens: int
    max_length: int
    special_tokens: int = 0
    pool_size: int = 10_000
    seed: int = 0
    shuffle: bool = True
    #: The budget as the epoch plans take it (checked on construction).
    shape: BatchShape = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", BatchShape(self.max_tokens, self.max_length, self.special_tokens))
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be positive, got {self.pool_size}")

    def batches(self, sequences: Iterable[str], epoch: int = 0) -> Iterator[Batch]:
        """The epoch's batches, in training order, for the whole stream (before sharding)."""
        pool: list[str] = []
        start, pool_number = 0, 0
        for sequence in sequences:
            pool.append(sequence)
            if len(pool) == self.pool_size:
                yield from self._pool_batches(pool, start, epoch, pool_number)
                start, pool_number, pool = start + len(pool), pool_number + 1, []
        if pool:
            yield from self._pool_batches(pool, start, epoch, pool_number)

    def _pool_batches(self, pool: list[str], start: int, epoch: int, pool_number: int) -> list[Batch]:
        rng = np.random.default_rng([self.seed, epoch, pool_number])
        cropped = [self._crop(sequence, rng) for sequence in pool]
        shuffled = rng.permutation(len(pool)) if self.shuffle else np.arange(len(pool))
        # Stable sort of a shuffled order: equal lengths are mixed differently every epoch.
        order = sorted(shuffled.tolist(), key=lambda i: len(cropped[i]))
        batches = [
            Batch(tuple(cropped[i] for i in group), tuple(start + i for i in group))
            for group in self._cut(order, cropped)
        ]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _crop(self, sequence: str, rng: np.random.Generator) -> str:
        room = self.shape.room
        if len(sequence) <= room:
            return sequence
        offset = int(rng.integers(0, len(sequence) - room + 1))
        return sequence[offset : offset + room]

    def _cut(self, order: list[int], cropped: list[str]) -> Iterator[list[int]]:
        """Greedy cut of a length-sorted order: the newest member is the longest, so it sets the padded width."""
        widths = np.fromiter((len(cropped[i]) for i in order), dtype=np.int64, count=len(order))
        cuts = cut_sorted(widths + self.special_tokens, self.max_tokens).tolist()
        for begin, end in pairwise(cuts):
            yield order[begin:end]


def shard(batches: Iterable[Batch], world_size: int, rank: int) -> Iterator[Batch]:
    """This process's share: batch ``rank`` of every round of ``world_size`` consecutive batches.

    Every process must take the same number of steps (a collective that waits for a missing peer hangs), so in
    the last, incomplete round the processes without a batch get a one-sequence ``filler`` batch whose loss is
    ignored. No sequence is trained on twice and none is dropped.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside [0, {world_size})")
    round_: list[Batch] = []
    for batch in batches:
        round_.append(batch)
        if len(round_) == world_size:
            yield round_[rank]
            round_ = []
    if round_:
        if rank < len(round_):
            yield round_[rank]
        else:
            shortest = min((s for b in round_ for s in b.sequences), key=len)
            yield Batch((shortest,), (), filler=True)
