"""Supervised FLIP/TAPE tasks in ``evaluate``: each model's frozen-embedding probe beside the one-hot linear model
and the CNN from scratch of ``protconv baseline``, on the same splits (``downstream.task_data.load_task_splits``),
scored on ``test`` (or, without one, on ``valid``, then with no hyper-parameter choice on it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel

from ..data.tasks.rows import LabelledSequences
from ..data.tasks.vocabulary import Split, TaskType
from ..downstream.baselines import BaselineArguments, run_baselines
from ..inference.common import ModelSession
from ..inference.embed import embed_sequences
from ..metrics import bootstrap_stderr, spearman
from ..modeling.vocabulary import IGNORE_INDEX
from .probes import logistic_probe, ridge_probe
from .results import Record

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


def _figure(task: TaskType, predicted: np.ndarray, truth: np.ndarray, samples: int) -> tuple[float, float | None]:
    def metric(index: np.ndarray) -> float:
        if task == "regression":
            return spearman(predicted[index], truth[index])
        return float((predicted[index] == truth[index]).mean())

    return metric(np.arange(len(truth))), bootstrap_stderr(metric, len(truth), samples)


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
    value, stderr = _figure(task, probe(train, valid, test_x), test_y, samples)
    return [Record(name, model, None, metric_name(task, classes), value, stderr)]


def baseline_records(
    name: str, spec: dict[str, Any], splits: Mapping[Split, LabelledSequences], classes: list[str] | None,
    samples: int = 100,
) -> list[Record]:  # fmt: skip
    """Each baseline's figure and stderr by ``_figure`` on its kept predictions, as the probes' are: the same metric
    and the same resamples, so a baseline's error bar compares with a model's. ``samples`` is ``--bootstrap``
    (its default, 100, here)."""
    task: TaskType = spec["kind"]
    baselines, epochs = str(spec.get("baselines", "linear,cnn")), int(spec.get("cnn_epochs", 10))
    options = BaselineArguments(baselines=baselines, cnn_epochs=epochs, disable_tqdm=True)
    results = run_baselines(task, splits, options)
    metric, target = metric_name(task, classes), eval_split(splits)
    records = []
    for baseline, result in results.items():
        predictions = result.predictions[target]
        value, stderr = _figure(task, predictions.predicted, predictions.labels, samples)
        records.append(Record(name, BASELINE_COLUMNS[baseline], None, metric, value, stderr))
    return records
