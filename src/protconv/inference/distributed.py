"""Inference on N processes (``torchrun`` or ``accelerate launch`` of ``python -m protconv``): who this process
is, the token plan that splits the work, the steps every rank passes together, and the shard files of a run.

The launchers describe the run in environment variables (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, and
``MASTER_ADDR``/``MASTER_PORT`` for the rendezvous); without them, or with ``WORLD_SIZE=1``, a command runs as it
always has and no process group is made. With them, ranks talk through a ``gloo`` process group of
``torch.distributed`` (used directly, not accelerate's ``PartialState``): inference exchanges one flag per step
(did every rank succeed?) and, once, rank 0's list of the records to compute (:func:`broadcast_bytes`, a byte per
record), never tensors of the model, so gloo serves GPU runs as well as CPU ones,
and a library call (``protconv.embed(...)``) makes and destroys its own group without touching accelerate's
process-wide state. Each rank computes on its own device: ``cuda:LOCAL_RANK`` when there are GPUs.

The plan: one process cuts its records into chunks of ``chunk_size`` in file order and each chunk into token
batches (:func:`protconv.inference.common.plan_batches`); N ranks make exactly those batches, then give them,
largest first, to the least-loaded rank (counting padded tokens, what a forward costs). A record's values depend
on the batch it runs in: a narrower batch (another padded width) gives other float bits, and so, for a model with
a sequence head, does a batch of other rows (the head's small matrix product: 2 rows against 15 at the same
width, checked on the CPU). Whole batches are what make N processes write one process's values bit for bit.

With too few batches for the ranks (fewer than ``PIECES_PER_RANK`` per rank, the slowest rank a whole batch
ahead: 1.145 at 64 ranks on the 24,874-protein corpus), :func:`plan_chunks` can cut batches into row slices of two
rows or more that keep the batch's padded width (``split``: the same padded tokens in all, finer pieces; 1.005
there). The encoder's states of such a slice, padded to its ``width`` (:func:`pad_to_width`), are the batch's bit
for bit on the CPU (Conv and Performer, ``last``/hidden layers, mean and per-residue: 360 slices of 2 to 11 rows
checked, ``tests/inference/test_distributed.py``; a one-row Conv slice is not, so none is made), so ``embed`` may
split; ``predict`` (a head) does not. On a GPU a library may pick its kernels by batch size too.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .common import plan_batches, resolve_device

#: How long a rank waits for the others at a step (rank 0 merging the shards of a long run, say).
STEP_TIMEOUT = datetime.timedelta(hours=24)
#: A test hook: ``"<rank>:<batches>"`` makes that rank exit at once after that many batches (a killed process).
EXIT_AFTER_ENV = "PROTCONV_TEST_EXIT_AFTER_BATCHES"


class PeerProcessError(ChildProcessError):
    """Another process of the run failed (its own message says why); this one stops at the same step."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


#: A run of one process (no launcher).
ONE_PROCESS = Ranks()


def detect_ranks() -> Ranks:
    """The run as torchrun / accelerate launch describe it in the environment (one process without them)."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as error:
        raise ValueError(f"WORLD_SIZE, RANK and LOCAL_RANK must be integers ({error})") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is not a rank of WORLD_SIZE={world_size}")
    return Ranks(rank, world_size, local_rank)


@contextmanager
def process_group(ranks: Ranks) -> Iterator[None]:
    """A gloo process group for the block when the run has several processes (one already made is reused)."""
    if not ranks.distributed or dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world_size, timeout=STEP_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def rank_device(ranks: Ranks, device: str | torch.device | None) -> torch.device:
    """``--device`` for this rank: the default (``None``/``auto``) is ``cuda:LOCAL_RANK`` when there are GPUs."""
    if (device is None or device == "auto") and ranks.distributed and torch.cuda.is_available():
        return torch.device("cuda", ranks.local_rank % torch.cuda.device_count())
    return resolve_device(device)


def agree(ranks: Ranks, ok: bool) -> bool:
    """Whether every rank reached this point with ``ok`` (one all-reduce of a flag; a barrier too)."""
    if not ranks.distributed:
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def broadcast_bytes(ranks: Ranks, data: bytes | None) -> bytes:
    """Rank 0's ``data`` on every rank (the others pass ``None``). Call it between steps, never inside one: a rank
    that failed in a step has already left it, and every rank must reach the same collective."""
    if not ranks.distributed:
        return data if data is not None else b""
    size = torch.tensor([len(data) if ranks.is_main and data is not None else 0], dtype=torch.int64)
    dist.broadcast(size, 0)
    if not int(size.item()):
        return b""
    if ranks.is_main and data is not None:
        buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    else:
        buffer = torch.empty(int(size.item()), dtype=torch.uint8)
    dist.broadcast(buffer, 0)
    return buffer.numpy().tobytes()


@contextmanager
def step(ranks: Ranks, what: str) -> Iterator[None]:
    """A part of the run that every rank ends together: an error on one rank is raised there and makes the others
    raise :class:`PeerProcessError`, instead of leaving them waiting at the next step forever."""
    try:
        yield
    except BaseException:
        if ranks.distributed:
            agree(ranks, False)
        raise
    if not agree(ranks, True):
        raise PeerProcessError(f"{what}: another process of this run failed (its message says why)")


#: Pieces per rank under which :func:`plan_chunks` (``split=True``) cuts batches: the least-loaded-first share of
#: similar pieces leaves the slowest rank about one piece, 1/16 of its share, above the mean.
PIECES_PER_RANK = 16


@dataclass(frozen=True)
class PlannedBatch:
    """One batch (or a row slice of one) of the one-process plan: indices into its chunk, padded tokens, the rank
    that runs it, and ``width``, the padded tokens per row of the one-process batch (a slice is padded to it)."""

    members: list[int]
    tokens: int
    rank: int
    width: int = 0


def plan_chunks(
    lengths: Sequence[int],
    chunk_size: int,
    max_tokens: int,
    special_tokens: int,
    world_size: int,
    split: bool = False,
) -> list[list[PlannedBatch]]:
    """Per chunk of ``chunk_size`` records (file order), its batches as one process makes them, each given to a
    rank: largest first to the least-loaded rank (ties: the lower rank, the earlier batch), so deterministic.
    ``split``: with fewer than ``PIECES_PER_RANK`` batches per rank, each batch is cut into up to as many row
    slices (consecutive members, same ``width``) as it takes to reach that many pieces; the caller must pad each
    piece to its ``width`` (:func:`pad_to_width`) to keep one process's values."""
    chunked: list[list[PlannedBatch]] = []
    for start in range(0, len(lengths), chunk_size):
        chunk = lengths[start : start + chunk_size]
        batches = plan_batches(chunk, max_tokens, special_tokens)
        chunked.append([PlannedBatch(b, len(b) * (chunk[b[0]] + special_tokens), 0, chunk[b[0]] + special_tokens)
                        for b in batches])  # fmt: skip
    count = sum(len(batches) for batches in chunked)
    if split and world_size > 1 and 0 < count < PIECES_PER_RANK * world_size:
        pieces = -(-PIECES_PER_RANK * world_size // count)
        chunked = [[piece for batch in batches for piece in _slices(batch, pieces)] for batches in chunked]
    flat = [(c, b) for c, batches in enumerate(chunked) for b in range(len(batches))]
    flat.sort(key=lambda cb: -chunked[cb[0]][cb[1]].tokens)
    loads = [(0, rank) for rank in range(world_size)]
    for c, b in flat:
        load, rank = heapq.heappop(loads)
        batch = chunked[c][b]
        chunked[c][b] = PlannedBatch(batch.members, batch.tokens, rank, batch.width)
        heapq.heappush(loads, (load + batch.tokens, rank))
    return chunked


def _slices(batch: PlannedBatch, pieces: int) -> list[PlannedBatch]:
    """``batch`` cut into up to ``pieces`` runs of consecutive members of near-equal size, each of its width and
    of two rows at least: a one-row Conv batch takes another kernel path (other float bits)."""
    count = max(1, min(pieces, len(batch.members) // 2))
    bounds = [len(batch.members) * k // count for k in range(count + 1)]
    return [
        PlannedBatch(batch.members[a:b], (b - a) * batch.width, batch.rank, batch.width)
        for a, b in itertools.pairwise(bounds)
    ]


def pad_to_width(inputs: dict[str, torch.Tensor], width: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Every ``(batch, tokens)`` tensor right-padded to ``width`` tokens (the one-process batch's width, so a row
    slice runs on the tensors its rows had there): ``input_ids`` with the pad token, the others (attention mask,
    a tokenizer's token type ids) with 0; unchanged when already that wide."""
    current = inputs["input_ids"].shape[1]
    if width <= current:
        return inputs
    padded = {}
    for name, tensor in inputs.items():
        if tensor.dim() == 2 and tensor.shape[1] == current:
            value = pad_token_id if name == "input_ids" else 0
            tensor = torch.nn.functional.pad(tensor, (0, width - current), value=value)
        padded[name] = tensor
    return padded


def rank_tokens(plan: list[list[PlannedBatch]], world_size: int) -> list[int]:
    """The padded tokens each rank computes under ``plan``."""
    loads = [0] * world_size
    for batches in plan:
        for batch in batches:
            loads[batch.rank] += batch.tokens
    return loads


def imbalance(loads: Sequence[int]) -> float:
    """The slowest rank's tokens over the mean (1.0: perfectly even)."""
    mean = sum(loads) / len(loads)
    return max(loads) / mean if mean else 1.0


def shard_path(output: Path, ranks: Ranks, suffix: str) -> Path:
    """Rank K's shard of ``output``: ``<output>.rank-K-of-N.partial<suffix>`` beside it."""
    return output.with_name(f"{output.name}.rank-{ranks.rank}-of-{ranks.world_size}.partial{suffix}")


def find_shards(output: Path, suffix: str) -> list[Path]:
    """Every shard of ``output`` left in its folder, by any number of processes, in rank order."""
    pattern = re.compile(re.escape(output.name) + r"\.rank-(\d+)-of-(\d+)\.partial" + re.escape(suffix))
    found = []
    for path in output.parent.iterdir() if output.parent.is_dir() else ():
        match = pattern.fullmatch(path.name)
        if match:
            found.append((int(match.group(2)), int(match.group(1)), path))
    return [path for _, _, path in sorted(found)]


def exit_hook(ranks: Ranks) -> int | None:
    """The batch count after which this rank exits (the test hook ``EXIT_AFTER_ENV``), or None."""
    value = os.environ.get(EXIT_AFTER_ENV, "")
    if not value:
        return None
    rank, _, batches = value.partition(":")
    return int(batches) if int(rank) == ranks.rank else None
