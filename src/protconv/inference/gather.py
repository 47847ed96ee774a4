"""Zero-shot scoring on N processes: which of one process's batches each rank runs, and how their float results
come back to every rank.

``score``, ``scan`` and ``evaluate`` run equal-length rows (masked copies of one sequence), cut into batches of
the same size in one fixed order; a rank runs a contiguous run of those batches, cut where the rows (so the
tokens) are closest to an even share. The batches of the one-process plan, because a row's values depend on the
batch it runs in (BLAS blocking): the same batches are what makes N processes score as one, bit for bit. With
fewer than ``PIECES_PER_RANK`` batches a rank (a short wild type: 263 residues are 5 batches at the default
budget, 1.86 the mean on the slowest of 8 ranks), the batches are cut into row slices of two rows or more
(``plan_chunks(split=True)``, as ``embed`` does): the rows all have the same width, so a slice needs no padding,
and its masked rows are its batch's bit for bit on the CPU (Conv and Performer, every slice size from 2 to 61 of
a 61-row batch checked; a one-row Conv slice is not, so none is made). 1.03 at 8 ranks, 1.46 at 64 (4.1 rows a
rank there), ``benchmarks/score_ranks.py --balance_only``.

The results (float32 log-probabilities) are exchanged with ``all_gather`` of float tensors over gloo, not
``all_gather_object`` (pickle, which could execute code) and not shard files (a score CSV is small, the exchange
is in memory, needs no shared file system and leaves nothing behind when a rank is killed): every rank ends
with every row, in the one-process order.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

from .distributed import Ranks


def contiguous_shares(costs: Sequence[int], world_size: int) -> list[range]:
    """Per rank, the indices of its batches: consecutive runs that cover ``costs`` in order, each cut at the batch
    boundary nearest to an even share of the total cost (so a rank does at most about one batch more than the
    mean). Deterministic: every rank computes the same shares."""
    prefix = [0, *itertools.accumulate(costs)]
    total = prefix[-1]
    cuts = [0]
    for rank in range(1, world_size):
        target = total * rank / world_size
        after = bisect.bisect_left(prefix, target)
        nearest = after if after == 0 or prefix[after] - target <= target - prefix[after - 1] else after - 1
        cuts.append(min(max(nearest, cuts[-1]), len(costs)))
    cuts.append(len(costs))
    return [range(cuts[rank], cuts[rank + 1]) for rank in range(world_size)]


def all_gather_rows(ranks: Ranks, mine: np.ndarray) -> np.ndarray:
    """Every rank's float32 rows ``(rows, width)``, concatenated in rank order (a rank may have none; the others
    then give the width). One process: ``mine`` itself."""
    if mine.ndim != 2 or mine.dtype != np.float32:
        raise ValueError(f"all_gather_rows takes a 2-d float32 array, got {mine.dtype} of shape {mine.shape}")
    if not ranks.distributed:
        return mine
    shapes = _all_gather(torch.tensor(mine.shape, dtype=torch.int64), ranks)
    counts = [int(shape[0]) for shape in shapes]
    width = max(int(shape[1]) for shape, count in zip(shapes, counts, strict=True) if count) if any(counts) else 0
    if counts[ranks.rank] and mine.shape[1] != width:
        raise ValueError(f"rank {ranks.rank}: rows of width {mine.shape[1]}, another rank's are {width} wide")
    if not any(counts):
        return np.zeros((0, width), dtype=np.float32)
    padded = torch.zeros((max(counts), width), dtype=torch.float32)
    if counts[ranks.rank]:
        padded[: counts[ranks.rank]] = torch.from_numpy(mine)
    parts = _all_gather(padded, ranks)
    return np.concatenate([part[:count].numpy() for part, count in zip(parts, counts, strict=True)])


def main_decides(ranks: Ranks, flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (a decision only rank 0 can make, e.g. whether it found a cached result,
    that every rank must follow so that all run the same steps)."""
    if not ranks.distributed:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.broadcast(value, src=0)
    return bool(value.item())


def _all_gather(tensor: torch.Tensor, ranks: Ranks) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(ranks.world_size)]
    dist.all_gather(parts, tensor)
    return parts
