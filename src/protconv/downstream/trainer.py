"""``transformers.Trainer`` as fine-tuning uses it: the task's datasets and collator, the metrics, and a stop at
the first non-finite loss.

Users get Trainer's own features unchanged (eval/save strategy, best-model selection, bf16, accumulation,
activation checkpointing, resume); protconv only fills in what Trainer cannot know (the label column, the
collator, the metrics) and refuses to go on from a NaN: a non-finite training loss stops the run at that step,
and NaN predictions are never scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments

from ..data.task_files import LabelledSequences
from ..data.tasks.vocabulary import Split, TaskType
from ..metrics import NonFiniteError, metrics_for
from .checkpoints import AtomicCheckpointTrainer
from .finetune_arguments import FinetuneArguments
from .report import logger
from .task_data import TaskCollator, TaskDataset
from .task_model import TrainedModel

__all__ = [
    "FiniteLossTrainer",
    "build_trainer",
    "evaluate_split",
    "evaluate_splits",
    "loss_in_assay_units",
    "task_datasets",
]

#: A split's metrics (prefix stripped) and the model's outputs, in dataset order.
Evaluation = tuple[dict[str, float], np.ndarray]


class FiniteLossTrainer(AtomicCheckpointTrainer):
    """``Trainer`` that stops at the first non-finite training loss (and saves checkpoints complete or not at all).

    Trainer itself would go on: with ``logging_nan_inf_filter`` (the default) a NaN loss is even left out of the
    logged average, while its NaN gradients turn every weight into NaN at the next optimizer step. The check
    runs on the loss of every micro-batch, after its backward and before any optimizer step; with several
    processes they agree on it, so all stop together.
    """

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = (~torch.isfinite(loss)).any().float().reshape(1)
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, "sum")
        if bad.item() > 0:
            local = loss.item()
            value = f"is {local}" if not math.isfinite(local) else "is non-finite on another process"
            raise NonFiniteError(
                f"the training loss {value} at step {self.state.global_step + 1}: fine-tuning has "
                "diverged and was stopped before the update (no model saved). Lower --learning_rate, check the "
                "labels, or prefer bf16 to fp16"
            )
        return loss


def task_datasets(
    splits: Mapping[Split, LabelledSequences],
    tokenizer: PreTrainedTokenizerBase,
    args: FinetuneArguments,
    label_scale: tuple[float, float],
) -> dict[Split, TaskDataset]:
    """Every split tokenised for the task, regression targets z-scored with ``label_scale``."""
    return {
        split: TaskDataset(data, tokenizer, args.task, args.max_length, label_scale) for split, data in splits.items()
    }


def build_trainer(
    model: TrainedModel,
    training_args: TrainingArguments,
    datasets: Mapping[Split, TaskDataset],
    tokenizer: PreTrainedTokenizerBase,
    task: TaskType,
    label_scale: tuple[float, float],
) -> FiniteLossTrainer:
    """The Trainer for ``model``: trains on ``train``, evaluates on ``valid`` (when there is one). Trainer seeds
    here, in its constructor (``TrainingArguments.seed``), after the model was built."""
    if training_args.label_names is None:
        training_args.label_names = ["labels"]
    if training_args.device.type != "cuda":  # pinned memory serves only a CUDA copy; torch warns on a CPU run
        training_args.dataloader_pin_memory = False
    return FiniteLossTrainer(
        model=model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets.get("valid"),
        # transformers types a collator as returning dict; its own collators return BatchEncoding, as this one does
        data_collator=TaskCollator(tokenizer, task),  # type: ignore[arg-type]
        processing_class=tokenizer,
        compute_metrics=metrics_for(task, label_scale),
    )


def evaluate_splits(
    trainer: Trainer, datasets: Mapping[Split, TaskDataset], label_scale: tuple[float, float] = (0.0, 1.0)
) -> dict[Split, Evaluation]:
    """``valid`` then ``test``, those the task has."""
    return {
        split: evaluate_split(trainer, datasets[split], split, label_scale)
        for split in ("valid", "test")
        if split in datasets
    }


def evaluate_split(
    trainer: Trainer, dataset: TaskDataset, split: Split, label_scale: tuple[float, float] = (0.0, 1.0)
) -> Evaluation:
    """The split's metrics (logged like ``Trainer.evaluate``'s) and the model's outputs, in dataset order.
    ``label_scale``: the (mean, std) regression targets were z-scored with, for ``loss`` in the assay's units."""
    try:
        output = trainer.predict(dataset, metric_key_prefix=split)
    except NonFiniteError as error:
        raise NonFiniteError(f"{split} split: {error}") from error
    if output.metrics is None:  # not reached: predict always scores (its loss at least)
        raise ValueError(f"{split} split: Trainer.predict returned no metrics")
    output.metrics.update(loss_in_assay_units(output.metrics, split, label_scale))
    trainer.log(output.metrics)
    metrics = _strip_prefix(output.metrics, split)
    if not math.isfinite(metrics.get("loss", 0.0)):
        raise NonFiniteError(f"{split} split: the evaluation loss is {metrics['loss']} (no model saved)")
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            logger.warning("%s %s is undefined (%s), e.g. constant predictions; reported as such", split, name, value)
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return metrics, np.asarray(logits)


def loss_in_assay_units(metrics: Mapping[str, float], split: str, label_scale: tuple[float, float]) -> dict[str, float]:
    """A z-scored regression's loss is the MSE of z-scores, while ``mse`` is in the assay's units: report the
    loss in those units too (``std**2`` times, so it equals ``mse``) and keep the trained-on figure as
    ``loss_z``. Nothing changes for unscaled targets (classification, ``--normalize_labels false``)."""
    key = f"{split}_loss"
    if label_scale == (0.0, 1.0) or key not in metrics:
        return {}
    loss = metrics[key]
    return {key: loss * label_scale[1] ** 2, f"{split}_loss_z": loss}


def _strip_prefix(metrics: dict[str, float], split: str) -> dict[str, float]:
    """Trainer's ``valid_spearman`` -> ``spearman``; timings are dropped. Every score is kept, NaN included."""
    cleaned = {key.removeprefix(f"{split}_"): value for key, value in metrics.items()}
    return {
        k: v for k, v in cleaned.items() if isinstance(v, int | float) and "runtime" not in k and "per_second" not in k
    }
