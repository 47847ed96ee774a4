"""Supervised FLIP/TAPE tasks in ``evaluate``: each model's frozen-embedding probe beside the one-hot linear model
and the CNN from scratch of ``protconv baseline``, on the same splits (``downstream.task_data.load_task_splits``),
scored on ``test`` (or, without one, on ``valid``, then with no hyper-parameter choice on it).

Every column's standard error is the bootstrap of its metric over the scored split's units: examples for
sequence-level tasks, and for per-residue tasks (Q3) whole proteins, each drawn with all its scored residues (the
residues of one protein are not independent draws: resampling them one by one understates the error)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel

from ..data.tasks.rows import LabelledSequences
from ..data.tasks.vocabulary import Split, TaskType
from ..downstream.baselines import BaselineArguments, BaselinePredictions, BaselineResult, run_baselines
from ..inference.common import ModelSession
from ..inference.embed import embed_sequences
from ..metrics import bootstrap_stderr, spearman
from ..modeling.vocabulary import IGNORE_INDEX
from .probes import logistic_probe, ridge_probe
from .results import Record, write_json

#: The baseline columns, by ``protconv baseline``'s names.
BASELINE_COLUMNS = {"linear": "onehot-linear", "cnn": "cnn-scratch"}


def eval_split(splits: Mapping[Split, LabelledSequences]) -> Split:
    return "test" if "test" in splits else "valid"


def metric_name(task: TaskType, classes: list[str] | None) -> str:
    if task == "regression":
        return "spearman"
    return "q3" if task == "token-classification" and classes is not None and len(classes) == 3 else "accuracy"


def _features(
    session: ModelSession, network: PreTrainedModel, data: LabelledSequences, task: TaskType, tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    include = ("per_residue",) if task == "token-classification" else ("mean",)
    arrays = embed_sequences(network, session.encoder(), data.sequences, session.device, include, tokens)[include[0]]
    if task != "token-classification":
        return np.stack(arrays).astype(np.float64), np.asarray(data.labels)
    rows, labels = [], []
    for residues, residue_labels in zip(arrays, data.labels, strict=True):
        keep = np.asarray(residue_labels) != IGNORE_INDEX
        rows.append(residues[keep])
        labels.append(np.asarray(residue_labels)[keep])
    return np.concatenate(rows).astype(np.float64), np.concatenate(labels)


def scored_residues(data: LabelledSequences) -> np.ndarray:
    """Per protein, how many of its residues are scored (label not -100): the probes and baselines keep exactly
    these, protein after protein, so the counts cut their flat per-residue arrays back into proteins."""
    return np.array([int((np.asarray(labels) != IGNORE_INDEX).sum()) for labels in data.labels], dtype=np.int64)


def scored_figure(
    task: TaskType, predicted: np.ndarray, truth: np.ndarray, samples: int, residues: np.ndarray | None = None
) -> tuple[float, float | None]:
    """The metric and its bootstrap standard error. Per-residue tasks pass ``residues`` (scored residues per
    protein, in order, summing to ``len(truth)``): the resampled units are then proteins, and a resample's
    accuracy is its residues' (a protein drawn twice counts twice). Proteins without a scored residue are no unit."""
    if task == "regression":
        return spearman(predicted, truth), bootstrap_stderr(
            lambda index: spearman(predicted[index], truth[index]), len(truth), samples
        )
    hits = (np.asarray(predicted) == np.asarray(truth)).astype(np.float64)
    if residues is None:
        return float(hits.mean()), bootstrap_stderr(lambda index: float(hits[index].mean()), len(hits), samples)
    protein_of = np.repeat(np.arange(len(residues)), residues)
    correct = np.bincount(protein_of, weights=hits, minlength=len(residues))[residues > 0]
    counts = residues[residues > 0].astype(np.float64)
    return float(correct.sum() / counts.sum()), bootstrap_stderr(
        lambda index: float(correct[index].sum() / counts[index].sum()), len(counts), samples
    )


def probe_records(
    name: str, spec: dict[str, Any], splits: Mapping[Split, LabelledSequences], classes: list[str] | None,
    model: str, session: ModelSession, network: PreTrainedModel, tokens: int, samples: int,
) -> list[Record]:  # fmt: skip
    task: TaskType = spec["kind"]
    target = eval_split(splits)
    base = cast(PreTrainedModel, network.base_model)  # the encoder under the head: last_hidden_state
    with torch.inference_mode():
        train = _features(session, base, splits["train"], task, tokens)
        valid = (
            _features(session, base, splits["valid"], task, tokens) if "valid" in splits and target == "test" else None
        )
        test_x, test_y = _features(session, base, splits[target], task, tokens)
    probe = ridge_probe if task == "regression" else logistic_probe
    residues = scored_residues(splits[target]) if task == "token-classification" else None
    value, stderr = scored_figure(task, probe(train, valid, test_x), test_y, samples, residues)
    return [Record(name, model, None, metric_name(task, classes), value, stderr)]


#: The last baselines trained, with their key and splits: the mode tasks of one suite task (probe, full, lora)
#: share its splits object, so its baselines are trained once per run and stand beside each mode's row.
_LAST_BASELINES: list[tuple[tuple[str, str, int], Mapping[Split, LabelledSequences], dict]] = []


def _trained_baselines(
    task: TaskType, splits: Mapping[Split, LabelledSequences], options: BaselineArguments
) -> dict[str, BaselineResult]:
    key = (task, options.baselines, options.cnn_epochs)
    if _LAST_BASELINES and _LAST_BASELINES[0][0] == key and _LAST_BASELINES[0][1] is splits:
        return _LAST_BASELINES[0][2]
    results = run_baselines(task, splits, options)
    _LAST_BASELINES[:] = [(key, splits, results)]  # holding the splits: their id cannot be reused while here
    return results


def baseline_records(
    name: str, spec: dict[str, Any], splits: Mapping[Split, LabelledSequences], classes: list[str] | None,
    samples: int = 100, kept: Path | None = None,
) -> list[Record]:  # fmt: skip
    """Each baseline's figure and stderr by ``scored_figure`` on its kept predictions, as the probes' are: the same
    metric and the same resamples, so a baseline's error bar compares with a model's. ``samples`` is ``--bootstrap``
    (its default, 100, here). ``kept``: a file of the scored split's predictions (keyed by the data, not by
    ``samples``): read when there, so another ``--bootstrap`` recomputes the stderrs without fitting again."""
    task: TaskType = spec["kind"]
    baselines, epochs = str(spec.get("baselines", "linear,cnn")), int(spec.get("cnn_epochs", 10))
    options = BaselineArguments(baselines=baselines, cnn_epochs=epochs, disable_tqdm=True)
    metric, target = metric_name(task, classes), eval_split(splits)
    residues = scored_residues(splits[target]) if task == "token-classification" else None
    records = []
    for baseline, predictions in _scored_predictions(task, splits, options, target, kept).items():
        value, stderr = scored_figure(task, predictions.predicted, predictions.labels, samples, residues)
        records.append(Record(name, BASELINE_COLUMNS[baseline], None, metric, value, stderr))
    return records


def _scored_predictions(
    task: TaskType, splits: Mapping[Split, LabelledSequences], options: BaselineArguments, target: Split,
    kept: Path | None,
) -> dict[str, BaselinePredictions]:  # fmt: skip
    if kept is not None and kept.is_file():
        found = json.loads(kept.read_text(encoding="utf-8"))
        return {name: BaselinePredictions(np.asarray(p["predicted"]), np.asarray(p["labels"])) for name, p in
                found.items()}  # fmt: skip
    predictions = {
        name: result.predictions[target] for name, result in _trained_baselines(task, splits, options).items()
    }
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        write_json(kept, {name: {"predicted": p.predicted.tolist(), "labels": p.labels.tolist()}
                          for name, p in predictions.items()})  # fmt: skip
    return predictions
