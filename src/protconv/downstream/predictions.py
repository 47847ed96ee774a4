"""What fine-tuning writes about each evaluated split, in the terms of ``protconv predict``: one row per protein,
its id, the true label and the prediction in predict's columns (``prediction`` in the assay's units;
``predicted_label`` and ``probability``, by ``config.id2label`` name; ``residue_labels``, one name per residue),
and precision/recall/F1 per class, by name. A reader of ``valid_predictions.csv`` thus sees exactly what
``protconv predict`` would write for those proteins, beside the truth.

The true per-residue labels are written like the predictions, with ``.`` for a residue that is not scored
(mask 0); a truncated sequence (``--max_length``) has labels and predictions for the residues kept only.
The class names come from :func:`protconv.data.tasks.vocabulary.class_names` (``class_names`` moved there from
here, and is still importable from here for one release).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PretrainedConfig, PreTrainedTokenizerBase

from ..data.tasks.rows import LabelledSequences
from ..data.tasks.vocabulary import TaskType, class_names, prediction_columns
from ..metrics import per_class_metrics
from ..modeling.vocabulary import IGNORE_INDEX

#: The true label of a residue that is not scored (mask 0), in the ``label`` column of per-residue tasks.
UNSCORED = "."


@dataclass
class SplitPredictions:
    """A split's predictions table (``header``, ``rows``) and its per-class scores (None for regression)."""

    header: list[str]
    rows: list[list[str]]
    per_class: dict[str, dict[str, float]] | None


@dataclass(frozen=True)
class ResidueWindow:
    """Where a sequence's residues sit among its tokens: after ``offset`` leading special tokens, at most
    ``max_residues`` of them (None: all; else what ``--max_length`` leaves)."""

    offset: int
    max_residues: int | None

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase, max_length: int | None) -> ResidueWindow:
        special = tokenizer("A", return_special_tokens_mask=True)["special_tokens_mask"]
        kept = None if max_length is None else max_length - (len(special) - 1)
        return cls(special.index(0), kept)

    def residues(self, length: int) -> slice:
        kept = length if self.max_residues is None else min(length, self.max_residues)
        return slice(self.offset, self.offset + kept)


def split_predictions(
    task: TaskType,
    data: LabelledSequences,
    logits: np.ndarray,
    config: PretrainedConfig,
    label_scale: tuple[float, float],
    window: ResidueWindow,
) -> SplitPredictions:
    """The predictions table and per-class scores of one split from the Trainer's ``logits`` (in ``data``'s
    order; regression outputs still in z-scored units, mapped back with ``label_scale`` = (mean, std))."""
    header = ["id", "label", *prediction_columns(task, config)]  # predict names the tasks as fine-tuning does
    names = class_names(config)
    if task == "regression":
        mean, std = label_scale
        values = np.asarray(logits, dtype=np.float64).reshape(len(data), -1)[:, 0] * std + mean
        rows = [
            [name, repr(float(y)), repr(float(v))] for name, y, v in zip(data.names, data.labels, values, strict=True)
        ]
        return SplitPredictions(header, rows, None)
    if task == "classification":
        return _classification(header, data, np.asarray(logits, dtype=np.float64), names)
    return _per_residue(header, data, np.asarray(logits), names, window)


def _classification(
    header: list[str], data: LabelledSequences, logits: np.ndarray, names: list[str]
) -> SplitPredictions:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    predicted = probabilities.argmax(axis=-1)
    rows = [
        [name, names[label], names[k], repr(float(probabilities[i, k]))]
        for i, (name, label, k) in enumerate(zip(data.names, data.labels, predicted.tolist(), strict=True))
    ]
    return SplitPredictions(header, rows, per_class_metrics(predicted, np.asarray(data.labels), names))


def _per_residue(
    header: list[str], data: LabelledSequences, logits: np.ndarray, names: list[str], window: ResidueWindow
) -> SplitPredictions:
    rows, scored_predictions, scored_labels = [], [], []
    for i, (name, sequence, labels) in enumerate(zip(data.names, data.sequences, data.labels, strict=True)):
        span = window.residues(len(sequence))
        predicted = logits[i, span].argmax(axis=-1)
        truth = np.asarray(labels[: len(predicted)])
        scored = truth != IGNORE_INDEX
        scored_predictions.append(predicted[scored])
        scored_labels.append(truth[scored])
        true_names = [names[k] if k != IGNORE_INDEX else UNSCORED for k in truth.tolist()]
        rows.append([name, join_labels(true_names, names), join_labels([names[k] for k in predicted.tolist()], names)])
    per_class = per_class_metrics(np.concatenate(scored_predictions), np.concatenate(scored_labels), names)
    return SplitPredictions(header, rows, per_class)


def join_labels(labels: list[str], names: list[str]) -> str:
    """Per-residue labels as ``protconv predict`` writes them: joined when every name is one character
    (``CHHHEE``), else separated by spaces."""
    return "".join(labels) if all(len(name) == 1 for name in names) else " ".join(labels)


def write_predictions(path: Path, table: SplitPredictions) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(table.header)
        writer.writerows(table.rows)
