"""The pretraining data pipeline of one process: corpora (FASTA, MSAs) -> token-budget batches -> this process's
shard -> masked tensors (+ profile targets), with a position (epoch, batches done) that a checkpoint records and a
resumed run skips to."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..data.batching import Batch, TokenBudgetBatcher, shard
from ..data.fasta_corpus import FastaCorpus
from ..data.masking import PretrainingCollator
from ..data.msa_corpus import MSACorpus, ProfiledSequence
from ..modeling.configuration_base import objective_parts
from .arguments import DataArguments

#: Stands in for the epoch in validation seeds, so validation masks never coincide with an epoch's.
_VALIDATION_STREAM = 1 << 40


def masking_seed(*parts: int) -> int:
    """The seed of one batch's masking: a 63-bit pure function of ``parts`` (run seed, epoch, batch, rank), so
    every batch draws an independent stream that a resumed run reproduces."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass
class DataPosition:
    """How far training has read: this process's first ``batches_done`` batches of ``epoch`` are done. Saved in
    every checkpoint."""

    epoch: int = 0
    batches_done: int = 0


@dataclass
class PretrainingData:
    """Batches for one process of ``world_size``, reproducible from ``seed`` alone."""

    train: Corpora
    validation: Corpora | None
    batcher: TokenBudgetBatcher
    collator: PretrainingCollator
    world_size: int = 1
    rank: int = 0
    seed: int = 0
    prefetch: int = 2
    max_validation_sequences: int | None = None
    _validation: list[dict[str, torch.Tensor]] | None = field(default=None, init=False, repr=False)

    def epoch(self, position: DataPosition) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """``(batch index, tensors)`` for this process from ``position`` to the end of the epoch.

        Batches already done are skipped before any encoding or masking, so resuming costs one re-read of the
        stream up to that point, and every batch's mask is seeded by its own (epoch, batch index, rank).
        """
        batches = shard(self.batcher.batches(self.train, position.epoch), self.world_size, self.rank)
        todo = itertools.islice(enumerate(batches), position.batches_done, None)

        def collated() -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
            for index, batch in todo:
                yield index, self.collator(batch, masking_seed(self.seed, position.epoch, index, self.rank))

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
            self.collator(batch, masking_seed(self.seed, _VALIDATION_STREAM, i, self.rank))
            for i, batch in enumerate(mine)
        ]


def build_data(
    data_args: DataArguments,
    tokenizer: PreTrainedTokenizerBase,
    world_size: int,
    rank: int,
    seed: int,
    objective: str = "mlm",
    cache_dir: str | Path | None = None,
) -> PretrainingData:
    """Wire the corpora, batcher and collator described by ``data_args`` for the model's ``objective``.

    The held-out split does not depend on ``seed``: runs with different seeds are validated on the same proteins.
    Profiles of ``msa_files`` are computed (or read from ``cache_dir``) here, before the first step.
    """
    parts = objective_parts(objective)
    if "profile" in parts and not data_args.msa_files:
        raise ValueError(f"pretraining_objective={objective!r} needs profile targets: pass --msa_files")
    collator = PretrainingCollator(
        tokenizer,
        mlm="mlm" in parts,
        profile="profile" in parts,
        mlm_probability=data_args.mlm_probability,
        mask_fraction=data_args.mask_fraction,
        random_fraction=data_args.random_fraction,
    )
    train, validation = _corpora(data_args, cache_dir)
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


def _corpora(data_args: DataArguments, cache_dir: str | Path | None) -> tuple[Corpora, Corpora | None]:
    """Training and validation corpora: FASTA files and MSAs, each held out by its own files or by hash."""
    fraction = data_args.validation_fraction
    train, validation = Corpora([]), Corpora([])
    if data_args.train_files:
        split = not data_args.validation_files and fraction > 0

        def fasta(paths: list[str], side: str, held_out: float) -> FastaCorpus:
            return FastaCorpus(paths, data_args.invalid_sequences, held_out, side)

        train.parts.append(fasta(data_args.train_files, "train" if split else "all", fraction if split else 0.0))
        if data_args.validation_files:
            validation.parts.append(fasta(data_args.validation_files, "all", 0.0))
        elif split:
            validation.parts.append(fasta(data_args.train_files, "validation", fraction))
    if data_args.msa_files:
        split = not data_args.validation_msa_files and fraction > 0

        def msas(paths: list[str], side: str, held_out: float) -> MSACorpus:
            corpus = MSACorpus(
                paths, cache_dir, data_args.profile_prior, data_args.profile_pseudocount_weight,
                data_args.msa_inserts, held_out, side,
            )  # fmt: skip
            corpus.prepare()
            return corpus

        train.parts.append(msas(data_args.msa_files, "train" if split else "all", fraction if split else 0.0))
        if data_args.validation_msa_files:
            validation.parts.append(msas(data_args.validation_msa_files, "all", 0.0))
        elif split:
            validation.parts.append(msas(data_args.msa_files, "validation", fraction))
    return train, (validation if validation.parts else None)


@dataclass
class Corpora:
    """Several corpora read one after the other (FASTA proteins, then MSA members)."""

    parts: list[FastaCorpus | MSACorpus]

    def __iter__(self) -> Iterator[str | ProfiledSequence]:
        for part in self.parts:
            yield from part

    @property
    def skipped(self) -> int:
        """Invalid records skipped in the last pass (``invalid_sequences=skip``)."""
        return sum(part.skipped for part in self.parts)


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
