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
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, PretrainedConfig

from ..data.fasta import read_fasta
from ..data.tasks.vocabulary import prediction_columns
from ..model_source import load_tokenizer
from ..progress import progress_bar
from ..tokenization.validation import UnknownPolicy, clean_sequence
from .common import (
    DEFAULT_MAX_TOKENS,
    BatchEncoder,
    InferenceInputError,
    check_length_limit,
    check_model_source,
    chunks,
    load_config,
    load_model,
    plan_batches,
    residue_positions,
    resolve_device,
    resolve_dtype,
)
from .embed import DEFAULT_CHUNK_SIZE
from .inputs import atomic_text_output, looks_like_fasta, read_csv, same_file, scan_fasta

TASKS = ("regression", "classification", "multi-label", "token-classification")


@dataclass(frozen=True)
class PredictResult:
    output: Path
    task: str
    columns: tuple[str, ...]
    records: int
    seconds: float


def task_of(config: PretrainedConfig, source: str) -> str:
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
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    unknown: UnknownPolicy = "error",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
) -> PredictResult:
    """Predict every protein of ``input_path`` (FASTA or CSV) with the fine-tuned ``model``; write the CSV ``output``
    atomically (see the module documentation for the columns)."""
    started = time.perf_counter()
    output = Path(output)
    if same_file(input_path, output):
        raise InferenceInputError(f"{output}: the output would overwrite the input file")
    if max_tokens_per_batch < 1:
        raise InferenceInputError(f"max_tokens_per_batch must be positive, got {max_tokens_per_batch}")
    if chunk_size < 1:
        raise InferenceInputError(f"chunk_size must be positive, got {chunk_size}")
    source = check_model_source(model)
    config = load_config(source)
    task = task_of(config, source)
    columns = prediction_columns(task, config)
    encoder = BatchEncoder(load_tokenizer(source))
    framing = encoder.framing
    fasta = looks_like_fasta(input_path)
    if fasta:
        count = scan_fasta(input_path, unknown, config, framing).records
        header = ["id", *columns]
        delimiter = ","
    else:
        count, table_header, delimiter, column = _scan_table(
            input_path, sequence_column, unknown, config, framing.special_tokens
        )
        clash = sorted(set(columns) & set(table_header))
        if clash:
            raise InferenceInputError(f"{input_path}: already has column(s) {clash}, which predict would add")
        header = [*table_header, *columns]
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    auto = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    network, _ = load_model(source, auto, torch_dtype, torch_device, "the fine-tuned head (classifier)")
    names = [str(config.id2label.get(i, i)) for i in range(config.num_labels)]

    items = _fasta_items(input_path, unknown) if fasta else _table_items(input_path, column, unknown)
    with atomic_text_output(output) as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        bar = progress_bar(count, f"predict {Path(input_path).name}", progress, unit="rec")
        tokens, t0 = 0, time.perf_counter()
        try:
            for chunk in chunks(items, chunk_size):
                results: list[list[str]] = [[] for _ in chunk]
                lengths = [len(item.sequence) for item in chunk]
                for batch in plan_batches(lengths, max_tokens_per_batch, framing.special_tokens):
                    members = [chunk[i] for i in batch]
                    predicted = _predict_batch(network, encoder, members, task, names, torch_device)
                    for i, values in zip(batch, predicted, strict=True):
                        results[i] = values
                    tokens += sum(lengths[i] + framing.special_tokens for i in batch)
                    bar.update(len(batch))
                    bar.set_postfix_str(f"{tokens / max(time.perf_counter() - t0, 1e-9):,.0f} tok/s", refresh=False)
                writer.writerows([*item.key, *values] for item, values in zip(chunk, results, strict=True))
        finally:
            bar.close()
    return PredictResult(output, task, columns, count, time.perf_counter() - started)


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


def _fasta_items(path, unknown: UnknownPolicy) -> Iterator[_Item]:
    for record in read_fasta(path, unknown=unknown):
        yield _Item([record.id], record.sequence)


def _table_items(path, column: int, unknown: UnknownPolicy) -> Iterator[_Item]:
    with read_csv(path) as (table, rows):
        for row in rows:
            yield _Item(row.fields, _clean(row.fields[column], f"{table.path}:{row.line}", unknown))


def _predict_batch(
    network, encoder: BatchEncoder, items: list[_Item], task: str, names: list[str], device
) -> list[list[str]]:
    lengths = [len(item.sequence) for item in items]
    inputs = encoder([item.sequence for item in items], device)
    with torch.inference_mode():
        logits = network(**inputs).logits.float()
        if task == "token-classification":
            mask = residue_positions(inputs, network.config, lengths).cpu().numpy()
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
