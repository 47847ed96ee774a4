"""The pretraining data pipeline of one process: record sources (indexed FASTA files, a ``datasets`` split, MSA
members) -> an epoch plan computed from their lengths -> this process's batches, read and cropped -> masked tensors
(+ profile targets), with a position (epoch, batches done) that a checkpoint records and a resumed run jumps to.

Every process builds the same plan from ``(seed, epoch)`` without talking to the others (``protconv.data.plans``):
a global shuffle of all records (or of one member per cluster), cut into token-budget batches of similar lengths,
dealt round-robin to the processes. A process then reads only the records of its own batches, so its throughput
does not fall with the number of processes, and resuming at batch ``k`` reads nothing before ``k``.

``--streaming`` datasets cannot be read at random: they keep the streaming path (every process reads the stream,
cuts batches from pools, keeps its share, and a resumed run re-reads the stream up to its position).
"""

from __future__ import annotations

import csv
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..data.batching import Batch, TokenBudgetBatcher, shard
from ..data.datasets_corpus import DatasetRecords, StreamingDataset
from ..data.datasets_corpus import load as load_dataset
from ..data.fasta import DataFileError, open_text
from ..data.fasta_corpus import FastaRecords, Side
from ..data.masking import PretrainingCollator
from ..data.msa_corpus import MSACorpus, MSARecords, ProfiledSequence
from ..data.plans import FILLER_SEQUENCE, BatchShape, Clusters, EpochPlan, crop_offsets, plan_epoch, plan_in_order
from ..modeling.configuration_base import MLM, PROFILE, PretrainingObjective, objective_parts
from .arguments import DataArguments

logger = logging.getLogger(__name__)

#: Stands in for the epoch in validation seeds, so validation masks never coincide with an epoch's.
_VALIDATION_STREAM = 1 << 40
#: Held-out sequences a streamed dataset is read for when no --max_validation_sequences caps them.
STREAMING_VALIDATION_SEQUENCES = 2000


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


class RecordSource(Protocol):
    """What the pipeline needs of a corpus: residue counts to plan with, and random reads of records."""

    lengths: np.ndarray
    skipped: int

    def __len__(self) -> int: ...

    def read(self, records: np.ndarray) -> Sequence[str | ProfiledSequence]: ...

    def record_ids(self) -> list[str]: ...

    def digests(self) -> dict[str, str]: ...


@dataclass
class Corpora:
    """Several record sources numbered one after the other (FASTA proteins, dataset rows, MSA members)."""

    parts: list[RecordSource]
    lengths: np.ndarray = field(init=False, repr=False)
    starts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.starts = np.cumsum([0] + [len(part) for part in self.parts]).astype(np.int64)
        self.lengths = (
            np.concatenate([np.asarray(part.lengths, dtype=np.int64) for part in self.parts])
            if self.parts
            else np.zeros(0, dtype=np.int64)
        )

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read(self, records: np.ndarray) -> list[str | ProfiledSequence]:
        """The records (global numbers), each read by its own source."""
        records = np.asarray(records, dtype=np.int64)
        parts = np.searchsorted(self.starts, records, "right") - 1
        found: list[Any] = [None] * len(records)
        for number in np.unique(parts).tolist():
            mine = np.flatnonzero(parts == number)
            for at, sequence in zip(mine.tolist(), self.parts[number].read(records[mine] - self.starts[number]),
                                    strict=True):  # fmt: skip
                found[at] = sequence
        return found

    def __iter__(self) -> Iterator[str | ProfiledSequence]:
        """Every record in order (blocks of reads)."""
        for start in range(0, len(self), 4096):
            yield from self.read(np.arange(start, min(start + 4096, len(self))))

    @property
    def skipped(self) -> int:
        """Invalid records left out (``invalid_sequences=skip``)."""
        return sum(part.skipped for part in self.parts)

    def digests(self) -> dict[str, str]:
        """The content digest of every FASTA file, dataset split and MSA file, by path (or dataset name)."""
        found: dict[str, str] = {}
        for part in self.parts:
            found.update(part.digests())
        return found

    def check_unchanged(self) -> None:
        """Raise ``FastaFormatError`` naming a FASTA file that changed since it was opened (before each epoch)."""
        for part in self.parts:
            if isinstance(part, FastaRecords):
                part.check_unchanged()


@dataclass
class PretrainingData:
    """Batches for one process of ``world_size``, reproducible from ``seed`` alone."""

    train: Corpora | StreamingDataset
    validation: Corpora | StreamingDataset | None
    shape: BatchShape
    collator: PretrainingCollator
    world_size: int = 1
    rank: int = 0
    seed: int = 0
    prefetch: int = 2
    max_validation_sequences: int | None = None
    window: int = 100_000
    clusters: Clusters | None = None
    _validation: list[dict[str, torch.Tensor]] | None = field(default=None, init=False, repr=False)
    _plan: tuple[int, EpochPlan] | None = field(default=None, init=False, repr=False)

    @property
    def streaming(self) -> bool:
        return isinstance(self.train, StreamingDataset)

    def plan(self, epoch: int) -> EpochPlan:
        """The plan of ``epoch`` (the same on every process; the last one is kept)."""
        if isinstance(self.train, StreamingDataset):
            raise TypeError("a --streaming dataset has no epoch plan: its batches are cut from the stream")
        if self._plan is None or self._plan[0] != epoch:
            self._plan = (
                epoch,
                plan_epoch(self.train.lengths, self.shape, self.seed, epoch, self.window, self.clusters),
            )
        return self._plan[1]

    def epoch(self, position: DataPosition) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """``(batch index, tensors)`` for this process from ``position`` to the end of the epoch.

        Resuming computes the epoch's plan (from lengths only) and starts reading at batch ``batches_done``; every
        batch's mask is seeded by its own (epoch, batch index, rank).
        """
        train = self.train
        if isinstance(train, StreamingDataset):
            return _prefetched(self._streamed(train, position), self.prefetch)

        train.check_unchanged()  # here, in the caller, so that a changed file stops the run before the epoch

        def collated() -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
            plan = self.plan(position.epoch)
            for index in range(position.batches_done, plan.rounds(self.world_size)):
                batch = self.batch(train, plan.share(self.world_size, self.rank, index), position.epoch)
                yield index, self.collator(batch, masking_seed(self.seed, position.epoch, index, self.rank))

        return _prefetched(collated(), self.prefetch)

    def batch(self, corpora: Corpora, records: np.ndarray | None, stream: int) -> Batch:
        """Read and crop ``records`` (``None``: a filler batch); crops are seeded by (seed, ``stream``, record)."""
        room = self.shape.room
        if records is None:
            return Batch((FILLER_SEQUENCE[:room],), (), filler=True)
        sequences = corpora.read(records)
        offsets = crop_offsets(corpora.lengths[records], room, self.seed, stream, records).tolist()
        cropped = tuple(s[o : o + room] if len(s) > room else s for s, o in zip(sequences, offsets, strict=True))
        return Batch(cropped, tuple(records.tolist()))

    def _streamed(
        self, stream: StreamingDataset, position: DataPosition
    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        stream.epoch = position.epoch
        batcher = TokenBudgetBatcher(
            self.shape.max_tokens, self.shape.max_length, self.shape.special_tokens, self.window, self.seed
        )
        batches = shard(batcher.batches(stream, position.epoch), self.world_size, self.rank)
        for index, batch in itertools.islice(enumerate(batches), position.batches_done, None):
            yield index, self.collator(batch, masking_seed(self.seed, position.epoch, index, self.rank))

    def corpus_identity(self) -> dict[str, dict[str, str]]:
        """``{"train"|"validation": {FASTA/MSA path or dataset name: digest}}`` (not of a --streaming dataset,
        which is never read whole): saved in checkpoints, compared on resume."""
        identity = {}
        for side, corpora in (("train", self.train), ("validation", self.validation)):
            if isinstance(corpora, Corpora) and (digests := corpora.digests()):
                identity[side] = digests
        return identity

    def validation_batches(self) -> list[dict[str, torch.Tensor]]:
        """This process's validation shard, masked once with a fixed seed so that every evaluation is comparable."""
        if self._validation is None:
            self._validation = [] if self.validation is None else self._collate_validation(self.validation)
        return self._validation

    def _collate_validation(self, validation: Corpora | StreamingDataset) -> list[dict[str, torch.Tensor]]:
        if isinstance(validation, StreamingDataset):
            sequences = itertools.islice(iter(validation), self.max_validation_sequences)
            streamed = TokenBudgetBatcher(
                self.shape.max_tokens, self.shape.max_length, self.shape.special_tokens, 10**9, self.seed, False
            ).batches(sequences)
            mine = list(shard(streamed, self.world_size, self.rank))
        else:
            count = min(len(validation), self.max_validation_sequences or len(validation))
            plan = plan_in_order(np.arange(count), validation.lengths, self.shape)
            mine = [
                self.batch(validation, plan.share(self.world_size, self.rank, i), _VALIDATION_STREAM)
                for i in range(plan.rounds(self.world_size))
            ]
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
    objective: PretrainingObjective = "mlm",
    cache_dir: str | Path | None = None,
    data_cache_dir: str | Path | None = None,
    progress: bool = False,
) -> PretrainingData:
    """Wire the record sources, plan and collator described by ``data_args`` for the model's ``objective``.

    The held-out split does not depend on ``seed``: runs with different seeds are validated on the same proteins.
    Profiles of ``msa_files`` are computed (or read from ``cache_dir``) and FASTA files indexed (or their indexes
    read from the data cache) here, before the first step. The data cache is ``data_cache_dir``, else
    ``--data_cache_dir``, else ``data_cache`` beside ``cache_dir`` (the loop passes ``OUTPUT_DIR/profile_cache``,
    so ``OUTPUT_DIR/data_cache``), or inside ``cache_dir`` when ``--profile_cache_dir`` chose it; with none of
    these, indexes are kept in memory. ``progress``: show a bar while profiles are prepared (one process only,
    and only on a terminal).
    """
    parts = objective_parts(objective)
    if PROFILE in parts and not data_args.msa_files:
        raise ValueError(f"pretraining_objective={objective!r} needs profile targets: pass --msa_files")
    collator = PretrainingCollator(
        tokenizer,
        mlm=MLM in parts,
        profile=PROFILE in parts,
        mlm_probability=data_args.mlm_probability,
        mask_fraction=data_args.mask_fraction,
        random_fraction=data_args.random_fraction,
    )
    shape = BatchShape(data_args.max_tokens_per_batch, data_args.max_length, collator.special_tokens_per_sequence)
    data_cache = _data_cache(data_args, cache_dir, data_cache_dir)
    train: Corpora | StreamingDataset
    validation: Corpora | StreamingDataset | None
    if data_args.streaming:
        train, validation = _streamed_corpora(data_args, seed)
        clusters = None
    else:
        indexed, validation = _corpora(data_args, cache_dir, data_cache, progress)
        train, clusters = indexed, _clusters(data_args, indexed)
    return PretrainingData(
        train,
        validation,
        shape,
        collator,
        world_size,
        rank,
        seed,
        data_args.prefetch_batches,
        data_args.max_validation_sequences,
        data_args.pool_size,
        clusters,
    )


def _data_cache(data_args: DataArguments, cache_dir: str | Path | None, explicit: str | Path | None) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    if data_args.data_cache_dir:
        return Path(data_args.data_cache_dir)
    if cache_dir is None:
        return None
    return Path(cache_dir).parent / "data_cache" if data_args.profile_cache_dir is None else Path(cache_dir) / "data"


def _corpora(
    data_args: DataArguments, cache_dir: str | Path | None, data_cache: Path | None, progress: bool = False
) -> tuple[Corpora, Corpora | None]:
    """Training and validation sources: FASTA files, a dataset split and MSAs, each held out by its own files
    (or split) or by a hash of the sequence."""
    fraction = data_args.validation_fraction
    train, validation = Corpora([]), Corpora([])
    if data_args.train_files:
        split = not data_args.validation_files and fraction > 0

        def fasta(paths: list[str], side: Side, held_out: float) -> FastaRecords:
            return FastaRecords(paths, data_args.invalid_policy, held_out, side, cache_dir=data_cache)

        train.parts.append(fasta(data_args.train_files, "train" if split else "all", fraction if split else 0.0))
        if data_args.validation_files:
            validation.parts.append(fasta(data_args.validation_files, "all", 0.0))
        elif split:
            validation.parts.append(fasta(data_args.train_files, "validation", fraction))
    if dataset_name := data_args.dataset_name:
        split = not data_args.dataset_validation_split and fraction > 0
        loaded: dict[str, Any] = {}

        def rows(split_name: str, side: Side, held_out: float) -> DatasetRecords:
            if split_name not in loaded:  # train and validation sides of one split share the loaded dataset
                loaded[split_name] = load_dataset(dataset_name, data_args.dataset_config, split_name)
            return DatasetRecords(
                dataset_name, data_args.dataset_config, split_name, data_args.sequence_column,
                data_args.invalid_policy, held_out, side, cache_dir=data_cache, dataset=loaded[split_name],
            )  # fmt: skip

        train.parts.append(rows(data_args.dataset_split, "train" if split else "all", fraction if split else 0.0))
        if data_args.dataset_validation_split:
            validation.parts.append(rows(data_args.dataset_validation_split, "all", 0.0))
        elif split:
            validation.parts.append(rows(data_args.dataset_split, "validation", fraction))
    if data_args.msa_files:
        split = not data_args.validation_msa_files and fraction > 0

        def msas(paths: list[str], side: Side, held_out: float) -> MSARecords:
            corpus = MSACorpus(
                paths, cache_dir, data_args.prior, data_args.profile_pseudocount_weight,
                data_args.insert_policy, held_out, side, progress=progress,
            )  # fmt: skip
            return MSARecords(corpus)

        train.parts.append(msas(data_args.msa_files, "train" if split else "all", fraction if split else 0.0))
        if data_args.validation_msa_files:
            validation.parts.append(msas(data_args.validation_msa_files, "all", 0.0))
        elif split:
            validation.parts.append(msas(data_args.msa_files, "validation", fraction))
    train = Corpora(train.parts)
    if not len(train):
        raise ValueError("the training data holds no usable records")
    validation = Corpora(validation.parts)
    return train, (validation if len(validation) else None)


def _streamed_corpora(data_args: DataArguments, seed: int) -> tuple[StreamingDataset, StreamingDataset | None]:
    fraction = data_args.validation_fraction
    split = not data_args.dataset_validation_split and fraction > 0
    name = data_args.dataset_name
    if not name:  # arguments.validate says so first
        raise ValueError("--streaming reads one --dataset_name only (FASTA and MSA inputs are indexed instead)")

    def stream(split_name: str, side: Side, held_out: float, buffer: int, limit: int | None) -> StreamingDataset:
        return StreamingDataset(
            name, data_args.dataset_config, split_name, data_args.sequence_column,
            data_args.invalid_policy, held_out, side, seed, buffer, limit,
        )  # fmt: skip

    limit = data_args.max_validation_sequences or STREAMING_VALIDATION_SEQUENCES
    train = stream(data_args.dataset_split, "train" if split else "all", fraction if split else 0.0,
                   data_args.shuffle_buffer, None)  # fmt: skip
    if data_args.dataset_validation_split:
        return train, stream(data_args.dataset_validation_split, "all", 0.0, 0, limit)
    if split:
        return train, stream(data_args.dataset_split, "validation", fraction, 0, limit)
    return train, None


def _clusters(data_args: DataArguments, train: Corpora) -> Clusters | None:
    """One cluster label per training record from ``--cluster_file`` or ``--cluster_header_field`` (FASTA
    records only; every other record, and a FASTA record the file does not list, is a cluster of its own)."""
    keys_of = _cluster_keys(data_args)
    if keys_of is None:
        return None
    names: dict[str, int] = {}
    labels = np.full(len(train), -1, dtype=np.int64)
    unlisted = 0
    for part, start in zip(train.parts, train.starts.tolist(), strict=False):
        if not isinstance(part, FastaRecords):
            continue
        for offset, key in enumerate(keys_of(part)):
            if key is None:
                unlisted += 1
                continue
            labels[start + offset] = names.setdefault(key, len(names))
    singles = np.flatnonzero(labels < 0)
    labels[singles] = len(names) + np.arange(len(singles))
    clusters = Clusters.from_labels(labels)
    if unlisted:
        logger.warning("%d training records have no cluster (not in the cluster file/header): each is its own",
                       unlisted)  # fmt: skip
    logger.info("cluster sampling: %d training records in %d clusters", len(train), len(clusters))
    return clusters


def _cluster_keys(data_args: DataArguments) -> Callable[[FastaRecords], list[str | None]] | None:
    """How each FASTA record's cluster is named (``None``: it is in no cluster): by ``--cluster_file``, else by
    the ``--cluster_header_field`` word of its header; ``None`` without either."""
    if data_args.cluster_file:
        mapping = _read_cluster_file(data_args.cluster_file)
        return lambda part: [mapping.get(record_id) for record_id in part.record_ids()]
    if header_field := data_args.cluster_header_field:
        return lambda part: [_header_field(header, header_field) for header in part.headers()]
    return None


def _read_cluster_file(path: str) -> dict[str, str]:
    """``member_id<TAB>cluster_id`` lines (extra columns and ``#`` comments ignored) -> {member: cluster}.

    Opened by ``open_text`` like every data file: a ``.tsv.gz`` (gzip by its magic bytes) is read, and bytes that
    are not UTF-8 raise a ``DataFileError`` naming the file and the line."""
    mapping: dict[str, str] = {}
    with open_text(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise DataFileError(path, number, f"expected 'member_id<TAB>cluster_id', got {row!r}")
            mapping[row[0].strip()] = row[1].strip()
    if not mapping:
        raise DataFileError(path, None, "no 'member_id<TAB>cluster_id' lines")
    return mapping


def _header_field(header: str, name: str) -> str | None:
    """The value of ``name=VALUE`` among a header's words (UniRef style), if present."""
    prefix = f"{name}="
    for word in header.split():
        if word.startswith(prefix):
            return word[len(prefix) :]
    return None


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
