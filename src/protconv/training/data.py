"""The pretraining data pipeline of one process: corpus -> token-budget batches -> this process's shard ->
masked tensors, with a position (epoch, round) that a checkpoint records and a resumed run skips to."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..data.batching import Batch, TokenBudgetBatcher, shard
from ..data.corpus import FastaCorpus
from ..data.masking import MaskedLMCollator
from .args import DataArguments

#: Stands in for the epoch in validation seeds, so validation masks never coincide with an epoch's.
_VALIDATION_STREAM = 1 << 40


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (independent streams per epoch/round/rank)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass
class DataPosition:
    """How far training has read: ``rounds`` batches of ``epoch`` are done. Saved in every checkpoint."""

    epoch: int = 0
    rounds: int = 0


@dataclass
class PretrainingData:
    """Batches for one process of ``world_size``, reproducible from ``seed`` alone."""

    train: FastaCorpus
    validation: FastaCorpus | None
    batcher: TokenBudgetBatcher
    collator: MaskedLMCollator
    world_size: int = 1
    rank: int = 0
    seed: int = 0
    prefetch: int = 2
    max_validation_sequences: int | None = None
    _validation: list[dict[str, torch.Tensor]] | None = field(default=None, init=False, repr=False)

    def epoch(self, position: DataPosition) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """``(round, tensors)`` for this process from ``position`` to the end of the epoch.

        Rounds already done are skipped before any encoding or masking, so resuming costs one re-read of the
        stream up to that point, and every batch's mask is seeded by its own (epoch, round, rank).
        """
        batches = shard(self.batcher.batches(self.train, position.epoch), self.world_size, self.rank)
        todo = itertools.islice(enumerate(batches), position.rounds, None)

        def collated() -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
            for round_, batch in todo:
                yield round_, self.collator(batch, derive_seed(self.seed, position.epoch, round_, self.rank))

        return _prefetched(collated(), self.prefetch)

    def validation_batches(self) -> list[dict[str, torch.Tensor]]:
        """This process's validation shard, masked once with a fixed seed so that every evaluation is comparable."""
        if self._validation is None:
            self._validation = [] if self.validation is None else self._collate_validation()
        return self._validation

    def _collate_validation(self) -> list[dict[str, torch.Tensor]]:
        sequences = itertools.islice(iter(self.validation), self.max_validation_sequences)
        plan = TokenBudgetBatcher(
            self.batcher.max_tokens, self.batcher.max_length, self.batcher.special_tokens, 10**9, self.seed, False
        ).batches(sequences)
        mine: list[Batch] = list(shard(plan, self.world_size, self.rank))
        return [
            self.collator(batch, derive_seed(self.seed, _VALIDATION_STREAM, i, self.rank))
            for i, batch in enumerate(mine)
        ]


def build_data(
    data_args: DataArguments, tokenizer: PreTrainedTokenizerBase, world_size: int, rank: int, seed: int
) -> PretrainingData:
    """Wire the corpus, batcher and collator described by ``data_args``.

    The held-out split does not depend on ``seed``: runs with different seeds are validated on the same proteins.
    """
    collator = MaskedLMCollator(
        tokenizer, data_args.mlm_probability, data_args.mask_fraction, data_args.random_fraction
    )
    split = not data_args.validation_files and data_args.validation_fraction > 0
    train = FastaCorpus(
        data_args.train_files,
        data_args.invalid_sequences,
        data_args.validation_fraction if split else 0.0,
        "train" if split else "all",
    )
    validation = None
    if data_args.validation_files:
        validation = FastaCorpus(data_args.validation_files, data_args.invalid_sequences)
    elif split:
        validation = FastaCorpus(
            data_args.train_files, data_args.invalid_sequences, data_args.validation_fraction, "validation"
        )
    batcher = TokenBudgetBatcher(
        data_args.max_tokens_per_batch,
        data_args.max_length,
        collator.special_tokens_per_sequence,
        data_args.pool_size,
        seed,
    )
    return PretrainingData(
        train,
        validation,
        batcher,
        collator,
        world_size,
        rank,
        seed,
        data_args.prefetch_batches,
        data_args.max_validation_sequences,
    )


_DONE = object()


def _prefetched(items: Iterator, depth: int) -> Iterator:
    """Produce ``items`` in a background thread, ``depth`` ahead, so batch preparation overlaps the model step
    (tensor work releases the GIL). Errors are re-raised in the consumer; ``depth`` 0 runs inline."""
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put(item)
            buffer.put(_DONE)
        except BaseException as error:
            buffer.put(error)

    worker = threading.Thread(target=produce, daemon=True, name="protconv-batches")
    worker.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
