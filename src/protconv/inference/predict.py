"""Predictions of a fine-tuned model (``protconv finetune``'s output, or any protconv task model) on new proteins.

The model class comes from ``config.architectures``: ``*ForSequenceClassification`` (one prediction per protein)
or ``*ForTokenClassification`` (one per residue). Columns added to the output:

* regression (``num_labels == 1`` or ``problem_type == "regression"``): ``prediction``, the head's value (a
  protconv fine-tuned head already predicts in the label's units; several outputs: ``prediction_<label>``);
* single-label classification: ``predicted_label`` (the ``config.id2label`` name) and ``probability`` (its
  softmax probability);
* multi-label classification: ``predicted_labels``, the names whose sigmoid is at least 0.5, joined by ``;``;
* per-residue classification: ``residue_labels``, one label per residue: the label names joined when every name
  is one character (e.g. ``CHHHEE``), else joined by spaces.

INPUT is a FASTA file (the output has an ``id`` column, then the prediction columns) or a CSV/TSV table (the
output is the table with the prediction columns added; ``sequence_column`` names the sequence column, by default
``sequence`` or ``seq``). The file is detected by its first non-blank line (``>`` starts FASTA). Inputs are
validated before the model is loaded, under the rules of ``embed``; rows come out in input order.

CSV convention: an ``id`` cell (from a FASTA header) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is written with a leading ``'`` (OWASP's advice against CSV formula injection), so a spreadsheet shows it
as text instead of running it; nothing else is changed (prediction values such as ``-0.5`` are numbers, and the
fields of a CSV input are copied as they are). The output is locked for the run
(:class:`protconv.file_guards.OutputFileLock`) and may not be one of its inputs.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from ..data.fasta import DuplicateIds
from ..data.fasta_index import FastaIndex, open_index
from ..data.tasks.vocabulary import PredictionTask, prediction_columns
from ..file_guards import OutputFileLock
from ..modeling.configuration_base import label_count
from ..progress import TokenRate, token_rate_bar
from ..tokenization.encoding import Framing, SequenceEncoder
from ..tokenization.validation import UnknownPolicy, clean_sequence
from .common import (
    DEFAULT_MAX_TOKENS,
    DtypeName,
    InferenceInputError,
    ModelSession,
    check_length_limit,
    check_positive,
    chunks,
    plan_batches,
    residue_positions,
)
from .distributed import (
    Ranks,
    broadcast_bytes,
    detect_ranks,
    find_shards,
    plan_chunks,
    process_group,
    rank_device,
    shard_path,
    step,
)
from .embed import DEFAULT_CHUNK_SIZE
from .inputs import (
    PendingRecords,
    atomic_text_output,
    check_duplicate_ids,
    check_not_inputs,
    index_cache,
    looks_like_fasta,
    pending_records,
    rank_records,
    read_csv,
    read_records,
    scan_fasta,
)

TASKS: tuple[PredictionTask, ...] = get_args(PredictionTask)
#: First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class PredictResult:
    output: Path
    task: PredictionTask
    columns: tuple[str, ...]
    records: int
    seconds: float


def task_of(config: PretrainedConfig, source: str) -> PredictionTask:
    """The prediction task a saved model was fine-tuned for, from ``architectures``/``problem_type``."""
    architectures = config.architectures or []
    if any(name.endswith("ForTokenClassification") for name in architectures):
        return "token-classification"
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise InferenceInputError(
            f"{source}: not a fine-tuned model (config.architectures = {architectures}); predict needs a "
            "*ForSequenceClassification or *ForTokenClassification model, e.g. the output of protconv finetune"
        )
    if config.problem_type == "regression" or (config.problem_type is None and config.num_labels == 1):
        return "regression"
    if config.problem_type == "multi_label_classification":
        return "multi-label"
    return "classification"


@dataclass
class _Item:
    key: list[str]  # the output row's leading fields: [id] for FASTA, the input fields for CSV
    sequence: str


def predict(
    model: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    sequence_column: str | None = None,
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS,
    dtype: DtypeName | torch.dtype = "float32",
    device: str | torch.device | None = None,
    unknown: UnknownPolicy = "error",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    duplicate_ids: DuplicateIds = "error",
) -> PredictResult:
    """Predict every protein of ``input_path`` (FASTA or CSV) with the fine-tuned ``model``; write the CSV ``output``
    atomically (see the module documentation for the columns). ``duplicate_ids`` (FASTA input): as in ``embed``."""
    output = Path(output)
    check_not_inputs([output], [input_path, model])
    check_positive(max_tokens_per_batch=max_tokens_per_batch, chunk_size=chunk_size)
    run = _Run(model, input_path, output, sequence_column, max_tokens_per_batch, dtype, device, unknown, chunk_size,
               progress, check_duplicate_ids(duplicate_ids))  # fmt: skip
    ranks = detect_ranks()
    if ranks.distributed:
        return _predict_ranks(ranks, run)
    with OutputFileLock(output):
        _remove_stale_shards(output)
        return _predict(run)


@dataclass(frozen=True)
class _Run:
    """The arguments of one ``predict`` call, for the one- and the multi-process paths."""

    model: str | Path
    input_path: str | Path
    output: Path
    sequence_column: str | None
    max_tokens_per_batch: int
    dtype: DtypeName | torch.dtype
    device: str | torch.device | None
    unknown: UnknownPolicy
    chunk_size: int
    progress: bool
    duplicate_ids: DuplicateIds


def _predict(run: _Run) -> PredictResult:
    started = time.perf_counter()
    session = ModelSession.open(run.model, run.dtype, run.device)
    task = task_of(session.config, session.source)
    columns = prediction_columns(task, session.config)
    encoder = session.encoder()
    layout = _scan_input(run.input_path, run.sequence_column, run.unknown, session.config, encoder.framing, columns,
                         run.duplicate_ids)  # fmt: skip
    network, _ = session.load(_head_class(task), "the fine-tuned head (classifier)")
    names = _label_names(session.config)
    items = _items(run.input_path, layout, run.unknown, run.duplicate_ids)
    with atomic_text_output(run.output) as handle:
        writer = csv.writer(handle, delimiter=layout.delimiter, lineterminator="\n")
        writer.writerow(layout.header)
        with token_rate_bar(layout.count, f"predict {Path(run.input_path).name}", run.progress) as bar:
            for chunk in chunks(items, run.chunk_size):
                predicted = _predict_chunk(
                    network, encoder, chunk, task, names, run.max_tokens_per_batch, session.device, bar
                )
                writer.writerows([*item.key, *values] for item, values in zip(chunk, predicted, strict=True))
    return PredictResult(run.output, task, columns, layout.count, time.perf_counter() - started)


@dataclass(frozen=True)
class _Layout:
    """What the validation pass learnt of the input: its record count, and the output's header and delimiter.
    ``column`` is the sequence column of a table, ``None`` for FASTA."""

    count: int
    header: list[str]
    delimiter: str
    column: int | None


def _scan_input(
    path: str | Path,
    sequence_column: str | None,
    unknown: UnknownPolicy,
    config: PretrainedConfig,
    framing: Framing,
    columns: tuple[str, ...],
    duplicate_ids: DuplicateIds = "error",
) -> _Layout:
    """Validate every record of the FASTA file or table ``path`` (see ``embed``'s rules) before the model loads."""
    if looks_like_fasta(path):
        scan = scan_fasta(path, unknown, config, framing, duplicate_ids=duplicate_ids)
        return _Layout(scan.records, ["id", *columns], ",", None)
    count, table_header, delimiter, column = _scan_table(path, sequence_column, unknown, config, framing.special_tokens)
    clash = sorted(set(columns) & set(table_header))
    if clash:
        raise InferenceInputError(f"{path}: already has column(s) {clash}, which predict would add")
    return _Layout(count, [*table_header, *columns], delimiter, column)


def _label_names(config: PretrainedConfig) -> list[str]:
    """The name of each output of the head (``id2label``; the index where a name is missing)."""
    id2label: Mapping[Any, str] = config.id2label if config.id2label is not None else {}
    return [str(id2label.get(i, i)) for i in range(label_count(config))]


def _predict_chunk(
    network: PreTrainedModel,
    encoder: SequenceEncoder,
    chunk: list[_Item],
    task: PredictionTask,
    names: list[str],
    max_tokens_per_batch: int,
    device: torch.device,
    bar: TokenRate,
    batches: list[list[int]] | None = None,
) -> list[list[str]]:
    """The prediction fields of each item of ``chunk``, in its order (batches run longest first). With
    ``batches`` (a rank's share of the chunk's batches), only their items get fields."""
    results: list[list[str]] = [[] for _ in chunk]
    lengths = [len(item.sequence) for item in chunk]
    special = encoder.framing.special_tokens
    for batch in plan_batches(lengths, max_tokens_per_batch, special) if batches is None else batches:
        predicted = _predict_batch(network, encoder, [chunk[i] for i in batch], task, names, device)
        for i, values in zip(batch, predicted, strict=True):
            results[i] = values
        bar.update(len(batch), sum(lengths[i] + special for i in batch))
    return results


def _scan_table(
    path, sequence_column: str | None, unknown: UnknownPolicy, config: PretrainedConfig, special_tokens: int
) -> tuple[int, list[str], str, int]:
    count = 0
    with read_csv(path) as (table, rows):
        column = table.column(sequence_column or "", "the sequence column (--sequence_column)", ("sequence", "seq"))
        for row in rows:
            where = f"{table.path}:{row.line}"
            sequence = _clean(row.fields[column], where, unknown)
            check_length_limit(config, len(sequence) + special_tokens, where)
            count += 1
        return count, table.header, table.delimiter, column


def _clean(sequence: str, where: str, unknown: UnknownPolicy) -> str:
    """The cleaned sequence; an invalid one raises ``InvalidSequenceError`` naming ``file:line`` and position."""
    return clean_sequence(sequence, record=where, unknown=unknown)


def _fasta_items(path, unknown: UnknownPolicy, duplicate_ids: DuplicateIds) -> Iterator[_Item]:
    for record in read_records(path, unknown, duplicate_ids):
        yield _Item([spreadsheet_safe(record.id)], record.sequence)


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a leading ``'`` when a spreadsheet would run it as a formula (see the module notes)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _table_items(path, column: int, unknown: UnknownPolicy) -> Iterator[_Item]:
    with read_csv(path) as (table, rows):
        for row in rows:
            yield _Item(row.fields, _clean(row.fields[column], f"{table.path}:{row.line}", unknown))


def _predict_batch(
    network: PreTrainedModel,
    encoder: SequenceEncoder,
    items: list[_Item],
    task: PredictionTask,
    names: list[str],
    device: torch.device,
) -> list[list[str]]:
    lengths = [len(item.sequence) for item in items]
    inputs = encoder([item.sequence for item in items], device)
    with torch.inference_mode():
        logits = network(**inputs).logits.float()
        if task == "token-classification":
            mask = residue_positions(inputs, encoder, lengths).cpu().numpy()
            labels = logits.argmax(dim=-1).cpu().numpy()
            return [[_join([names[k] for k in labels[b][mask[b]]], names)] for b in range(len(items))]
        if task == "regression":
            values = logits.cpu().numpy().astype(np.float64)
            return [[repr(float(v)) for v in row] for row in values]
        if task == "multi-label":
            chosen = (torch.sigmoid(logits) >= 0.5).cpu().numpy()
            return [[";".join(name for name, on in zip(names, row, strict=True) if on)] for row in chosen]
        probabilities = torch.softmax(logits, dim=-1)
        best, index = probabilities.max(dim=-1)
        return [[names[int(k)], repr(float(p))] for p, k in zip(best.tolist(), index.tolist(), strict=True)]


def _join(labels: list[str], names: list[str]) -> str:
    return "".join(labels) if all(len(name) == 1 for name in names) else " ".join(labels)


def _predict_ranks(ranks: Ranks, run: _Run) -> PredictResult:
    """``predict`` on several processes: each rank predicts its share of the one-process batches (the token plan
    of :mod:`protconv.inference.distributed`) into its shard, ``<output>.rank-K-of-N.partial.jsonl``; rank 0,
    which holds the output's lock for the run, then writes the one CSV in input order and removes the shards.

    A FASTA input is validated by rank 0 alone and indexed by it (``data_cache`` beside OUTPUT) while the others
    wait; every rank then plans from the index's lengths and reads only its share's records. A CSV table has no
    index: every rank validates and reads it whole, as one process does."""
    started = time.perf_counter()
    output = run.output
    with process_group(ranks), contextlib.ExitStack() as stack:
        with step(ranks, "predict: checking the inputs"):
            if ranks.is_main:
                stack.enter_context(OutputFileLock(output))
                _remove_stale_shards(output)  # before the barrier: no rank has opened its new shard yet
            session = ModelSession.open(run.model, run.dtype, rank_device(ranks, run.device))
            task = task_of(session.config, session.source)
            columns = prediction_columns(task, session.config)
            encoder = session.encoder()
            source = _RankInput.check(ranks, run, session.config, encoder.framing, columns, stack)
        source = source.shared(ranks)
        with step(ranks, "predict: computing"):
            source.open_index(run, stack)
            network, _ = session.load(_head_class(task), "the fine-tuned head (classifier)")
            lengths = source.lengths(run)
            special = encoder.framing.special_tokens
            # Whole batches: a row slice of a batch (plan_chunks' split) gives a sequence head other bits.
            plan = plan_chunks(lengths, run.chunk_size, run.max_tokens_per_batch, special, ranks.world_size)
            mine = [[batch.members for batch in batches if batch.rank == ranks.rank] for batches in plan]
            members = [[i for batch in batches for i in batch] for batches in mine]
            items = source.items(run, members)
            with (
                open(shard_path(output, ranks, _SHARD_SUFFIX), "w", encoding="utf-8") as shard,
                token_rate_bar(
                    sum(map(len, members)), f"predict {Path(run.input_path).name}", run.progress and ranks.is_main
                ) as bar,
            ):
                for index, chunk in enumerate(chunks(items, run.chunk_size)):
                    predicted = _predict_chunk(network, encoder, chunk, task, _label_names(session.config),
                                               run.max_tokens_per_batch, session.device, bar, mine[index])  # fmt: skip
                    for member in members[index]:
                        shard.write(json.dumps([index * run.chunk_size + member, predicted[member]]) + "\n")
        with step(ranks, f"predict: writing {output}"):
            if ranks.is_main and source.layout is not None:
                _write_merged(output, source.layout, _items(run.input_path, source.layout, run.unknown,
                                                            run.duplicate_ids), ranks)  # fmt: skip
    return PredictResult(output, task, columns, source.count, time.perf_counter() - started)


@dataclass
class _RankInput:
    """What one rank of a multi-process run knows of its input: the validation pass's ``layout`` (rank 0; every
    rank for a table) and, for a FASTA input, its index and the records to predict (sent by rank 0)."""

    fasta: bool
    layout: _Layout | None
    index: FastaIndex | None = None
    pending: PendingRecords | None = None

    @classmethod
    def check(
        cls,
        ranks: Ranks,
        run: _Run,
        config: PretrainedConfig,
        framing: Framing,
        columns: tuple[str, ...],
        stack: contextlib.ExitStack,
    ) -> _RankInput:
        """Validate the input (a FASTA file: rank 0 only, which indexes it too)."""
        fasta = looks_like_fasta(run.input_path)
        if fasta and not ranks.is_main:
            return cls(True, None)
        layout = _scan_input(run.input_path, run.sequence_column, run.unknown, config, framing, columns,
                             run.duplicate_ids)  # fmt: skip
        if not fasta:
            return cls(False, layout)
        index = stack.enter_context(contextlib.closing(open_index(run.input_path, index_cache(run.output))))
        return cls(True, layout, index, pending_records(index, run.duplicate_ids, lambda record_id: False))

    def shared(self, ranks: Ranks) -> _RankInput:
        """Rank 0's pending records on every rank (a FASTA input; between steps, as every rank must call it)."""
        if not self.fasta:
            return self
        found = broadcast_bytes(ranks, self.pending.encode() if self.pending is not None else None)
        return _RankInput(True, self.layout, self.index, PendingRecords.decode(found))

    def open_index(self, run: _Run, stack: contextlib.ExitStack) -> None:
        """Open the index rank 0 built (ranks 1..N-1 of a FASTA input)."""
        if self.fasta and self.index is None:
            self.index = stack.enter_context(contextlib.closing(open_index(run.input_path, index_cache(run.output))))

    @property
    def count(self) -> int:
        """The input's record count (after duplicates) or row count."""
        if self.pending is not None:
            return self.pending.records
        return self.layout.count if self.layout is not None else 0

    def lengths(self, run: _Run) -> list[int]:
        """The residue counts of the records, in input order: what the plan needs."""
        if self.index is not None and self.pending is not None:
            return self.index.lengths[self.pending.numbers].tolist()
        assert self.layout is not None
        return [len(item.sequence) for item in _items(run.input_path, self.layout, run.unknown, run.duplicate_ids)]

    def items(self, run: _Run, mine: list[list[int]]) -> Iterator[_Item]:
        """The items in input order; of a FASTA input only this rank's (``mine``: its members of each chunk)
        are read, the others are placeholders it never runs."""
        if self.index is not None and self.pending is not None:
            records = rank_records(self.index, self.pending, mine, run.chunk_size, run.unknown)
            return (_Item([], record.sequence) for record in records)
        assert self.layout is not None
        return _items(run.input_path, self.layout, run.unknown, run.duplicate_ids)


#: The file name ending of a rank's shard of predictions: one JSON line ``[row index, [fields]]`` per row.
_SHARD_SUFFIX = ".jsonl"


def _remove_stale_shards(output: Path) -> None:
    """A killed multi-process run's shards (at any process count) are never reused, only rewritten: removed by the
    run that holds the output's lock, so none is left behind after a rerun at another process count."""
    for shard in find_shards(output, _SHARD_SUFFIX):
        shard.unlink(missing_ok=True)


def _head_class(task: PredictionTask) -> type:
    return AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification


def _items(
    input_path: str | Path, layout: _Layout, unknown: UnknownPolicy, duplicate_ids: DuplicateIds
) -> Iterator[_Item]:
    if layout.column is None:
        return _fasta_items(input_path, unknown, duplicate_ids)
    return _table_items(input_path, layout.column, unknown)


def _write_merged(output: Path, layout: _Layout, items: Iterator[_Item], ranks: Ranks) -> None:
    """The CSV one process writes, from the ranks' shards (read whole: the prediction fields of every row)."""
    shards = [shard_path(output, Ranks(rank, ranks.world_size), _SHARD_SUFFIX) for rank in range(ranks.world_size)]
    fields: dict[int, list[str]] = {}
    for shard in shards:
        with open(shard, encoding="utf-8") as handle:
            for line in handle:
                index, values = json.loads(line)
                fields[index] = values
    with atomic_text_output(output) as handle:
        writer = csv.writer(handle, delimiter=layout.delimiter, lineterminator="\n")
        writer.writerow(layout.header)
        writer.writerows([*item.key, *fields[index]] for index, item in enumerate(items))
    for shard in shards:
        shard.unlink()
