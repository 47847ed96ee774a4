"""Fine-tuning with ``transformers.Trainer`` on downstream tasks: full, frozen backbone, or LoRA (peft).

Users get Trainer's own features unchanged (eval/save strategy, best-model selection, bf16, accumulation,
activation checkpointing, resume): protconv supplies the data, the collator, the metrics and the model, and
writes a Hub-ready folder at the end. Regression targets are normalised for training and the normalisation is
folded back into the head's last layer before saving, so the saved model predicts in the assay's units.

Nothing non-finite gets through: NaN/inf labels are bad rows (``task_data``), a non-finite training loss stops
the run at that step, NaN predictions are never scored, and weights holding a NaN/inf are never saved; each
raises ``NonFiniteError``.

Sequences run whole unless ``--max_length`` asks for truncation (Conv and rotary Performer models have no length
limit); a model with learned absolute positions refuses a longer input, naming it, instead of failing mid-run.
Class names (``--classes``, or the names found in the data) are saved as ``config.id2label``/``label2id``, so
``transformers.pipeline`` and ``protconv predict`` print ``H``/``E``/``C``, not ``LABEL_0``. Besides the model,
the output folder gets ``finetune_results.json`` (metrics, per-class scores by name, truncation and skipped-row
counts), ``{valid,test}_predictions.csv`` (``predictions.py``) and the run's log, ``protconv.log``.

This module is the run, step by step; each step lives in the module named for it: ``finetune_arguments``
(what is asked), ``sequence_lengths`` (does the data fit the model), ``task_model`` (the model trained and the
one saved), ``trainer`` (Trainer, its datasets and the evaluation) and ``report`` (log, saved model, results).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from transformers import TrainingArguments, set_seed

from ..data.tasks.vocabulary import Split
from ..file_guards import OutputDirLock, check_outputs_are_not_inputs
from ..metrics import NonFiniteError
from ..model_source import load_tokenizer
from ..registry import resolve_config
from .checkpoints import resolve_resume, weights_only_loading
from .finetune_arguments import FinetuneArguments, Mode, parse_finetune_arguments
from .report import (
    LOG_FILE,
    check_finite_weights,
    log_data,
    log_parameters,
    logger,
    open_run_log,
    prediction_tables,
    protconv_log_level,
    publish_model,
    run_logging,
    save_model,
    take_hub_push,
    write_curves,
    write_results,
)
from .sequence_lengths import SequenceLengthError, check_lengths
from .task_data import load_task_splits
from .task_model import (
    TrainedModel,
    build_task_model,
    fold_label_scale,
    label_maps,
    num_labels_for,
    prepare_mode,
    regression_label_scale,
    training_label_scale,
)
from .trainer import FiniteLossTrainer, build_trainer, evaluate_splits, task_datasets

__all__ = [
    "FinetuneArguments",
    "NonFiniteError",
    "SequenceLengthError",
    "finetune",
    "parse_finetune_arguments",
]
# Re-exported from their new homes: the names this module held before it was split by job (for one release).
__all__ += [
    "LOG_FILE",
    "FiniteLossTrainer",
    "Mode",
    "TrainedModel",
    "build_task_model",
    "check_finite_weights",
    "check_lengths",
    "fold_label_scale",
    "label_maps",
    "log_data",
    "log_parameters",
    "num_labels_for",
    "open_run_log",
    "prepare_mode",
    "protconv_log_level",
    "regression_label_scale",
    "run_logging",
]


def finetune(args: FinetuneArguments, training_args: TrainingArguments) -> dict[Split, dict[str, float]]:
    """Fine-tune, evaluate on valid/test, save a Hub-ready folder to ``<output_dir>/model``; returns metrics.

    Raises ``NonFiniteError`` (and writes no model) if the loss, the predictions or the weights go NaN/inf, and
    ``SequenceLengthError`` before any training if a sequence is too long for the model.
    """
    if training_args.output_dir is None:  # not reached: TrainingArguments defaults it to trainer_output
        raise ValueError("TrainingArguments.output_dir is not set")
    output = Path(training_args.output_dir)
    # Before anything is written: --output_dir may not be (or hold) the model it starts from, and one run at a time.
    check_outputs_are_not_inputs([output, output / "model"], [args.model if Path(args.model).is_dir() else None])
    with OutputDirLock(output), run_logging(training_args):
        return _finetune(args, training_args, output)


def _finetune(args: FinetuneArguments, training_args: TrainingArguments, output: Path) -> dict[Split, dict[str, float]]:
    hub_repo = take_hub_push(training_args)  # before Trainer: it would push OUTPUT/ itself
    splits, classes = load_task_splits(args, training_args.seed, args.num_labels)
    label_scale = training_label_scale(args, splits["train"])
    config = resolve_config(args.model)  # first: it names a --model that is neither a folder nor a preset
    tokenizer = load_tokenizer(args.model)
    truncated = check_lengths(splits, config, tokenizer.num_special_tokens_to_add(pair=False), args.max_length)
    # Logged once the data and the model are known good: a user error before this point is one line on stderr.
    open_run_log(training_args, output)
    logger.info("fine-tuning %s for %s (mode %s) on %s", args.model, args.task, args.mode, args.source)
    log_data(splits, classes, truncated, args.max_length)
    resume = resolve_resume(training_args.resume_from_checkpoint, output)
    # Seeded before the model is built: a new head and LoRA adapters are drawn from these generators (Trainer
    # seeds again in its constructor and in train(), for the data order and dropout).
    set_seed(training_args.seed)
    model = build_task_model(args.model, args.task, num_labels_for(args.task, classes), classes)
    trainable = prepare_mode(model, args)
    log_parameters(trainable)
    datasets = task_datasets(splits, tokenizer, args, label_scale)
    trainer = build_trainer(trainable, training_args, datasets, tokenizer, args.task, label_scale)
    with weights_only_loading():
        trainer.train(resume_from_checkpoint=resume)
    evaluated = evaluate_splits(trainer, datasets, label_scale)
    results = {split: metrics for split, (metrics, _) in evaluated.items()}
    tables = prediction_tables(args, splits, evaluated, model.config, tokenizer, label_scale)
    trained = cast(TrainedModel, trainer.model)  # the model it was given (Trainer types it loosely)
    save_model(trained, tokenizer, args, label_scale, output, results, training_args)
    write_results(args, output, results, tables, classes=classes, truncated=truncated, splits=splits)
    write_curves(trainer.state, training_args, output)
    if hub_repo is not None and trainer.is_world_process_zero():
        publish_model(output / "model", hub_repo, training_args)
    return results
