"""Token-budget batches from a stream of proteins, and their deterministic split across processes.

Protein lengths span two orders of magnitude, so a fixed number of sequences per batch either wastes most of a
batch on padding or runs out of memory on the long ones. Batches here hold up to ``max_tokens`` tokens *including*
padding, from sequences of similar length: the stream is read in pools, each pool is cropped, sorted by length and
cut greedily, and the batches are shuffled so that training does not see a short-to-long ramp.

Everything random is a pure function of ``(seed, epoch, pool)``, so every process computes the same plan without
talking to the others, and a resumed run can skip exactly the batches it has already trained on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    """Residue strings (already cropped) of one batch. ``indices`` are the sequences' positions in the epoch's
    stream (for checking coverage); a ``filler`` batch only keeps a process in step and carries no loss."""

    sequences: tuple[str, ...]
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

    def __post_init__(self) -> None:
        check_token_budget(self.max_tokens, self.max_length, self.special_tokens)
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
        room = self.max_length - self.special_tokens
        if len(sequence) <= room:
            return sequence
        offset = int(rng.integers(0, len(sequence) - room + 1))
        return sequence[offset : offset + room]

    def _cut(self, order: list[int], cropped: list[str]) -> Iterator[list[int]]:
        """Greedy cut of a length-sorted order: the newest member is the longest, so it sets the padded width."""
        group: list[int] = []
        for i in order:
            width = len(cropped[i]) + self.special_tokens
            if group and (len(group) + 1) * width > self.max_tokens:
                yield group
                group = []
            group.append(i)
        if group:
            yield group


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
