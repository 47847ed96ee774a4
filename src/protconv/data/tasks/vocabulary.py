"""The words every task-handling module shares: task types, split names, row policies, label kinds, and the
columns of a prediction table. One home, so that fine-tuning, the baselines, ``predict`` and the metrics cannot
disagree on what a task or a split is called."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, cast, get_args

from transformers import PretrainedConfig

#: What a fine-tuning task predicts: one number, one class per protein, or one class per residue.
TaskType = Literal["regression", "classification", "token-classification"]
#: What ``protconv predict`` can output: the fine-tuning tasks, and multi-label classification heads.
PredictionTask = Literal["regression", "classification", "multi-label", "token-classification"]
Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = get_args(Split)
#: What a reader does with a bad row: skip it (and report it), or stop at it.
BadRowPolicy = Literal["skip", "error"]
LabelKind = Literal["float", "int", "class"]
TASK_TYPES: tuple[TaskType, ...] = get_args(TaskType)


def prediction_columns(task: PredictionTask, config: PretrainedConfig) -> tuple[str, ...]:
    """The prediction columns of ``predict``'s table and of fine-tuning's ``{valid,test}_predictions.csv``."""
    if task == "regression":
        if config.num_labels == 1:
            return ("prediction",)
        id2label = _id2label(config)
        return tuple(f"prediction_{id2label[i]}" for i in range(len(id2label)))
    if task == "classification":
        return ("predicted_label", "probability")
    if task == "multi-label":
        return ("predicted_labels",)
    return ("residue_labels",)


def class_names(config: PretrainedConfig) -> list[str]:
    """The names ``protconv predict`` and fine-tuning's prediction tables write: ``config.id2label`` in id order
    (an id without a name is written as the id)."""
    id2label = _id2label(config)
    return [str(id2label.get(i, i)) for i in range(len(id2label))]


def _id2label(config: PretrainedConfig) -> Mapping[int, str]:
    """``config.id2label``: ``PretrainedConfig`` always sets it (two labels by default) and turns its keys into
    ints, though its annotation allows None and string keys."""
    if config.id2label is None:  # not reached with a PretrainedConfig
        raise ValueError(f"{type(config).__name__} has no id2label")
    return cast(Mapping[int, str], config.id2label)
