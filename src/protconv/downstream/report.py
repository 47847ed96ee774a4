"""What a fine-tuning run leaves behind and tells the user: its log, the saved model, its results and predictions.

Besides the model (``OUTPUT/model``, Hub-ready through ``hub.py``, with its card), the output folder gets
``finetune_results.json`` (metrics, per-class scores by name, truncation and skipped-row counts),
``{valid,test}_predictions.csv`` (``predictions.py``) and the run's log, ``protconv.log``. Weights holding a
NaN/inf are never saved, and a failed run leaves no results behind.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import ModelCard
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase, TrainerState, TrainingArguments

from ..data.task_files import LabelledSequences
from ..data.tasks.vocabulary import Split
from ..hub import push_folder, save_hub_folder
from ..metrics import NonFiniteError
from ..model_card import CardResult, build_card, config_yaml, data_name
from ..run_logging import configure_logging
from .finetune_arguments import FinetuneArguments
from .predictions import ResidueWindow, SplitPredictions, split_predictions, write_predictions
from .task_model import TrainedModel, finalise_model

__all__ = [
    "LOG_FILE",
    "check_finite_weights",
    "log_data",
    "log_parameters",
    "logger",
    "open_run_log",
    "prediction_tables",
    "protconv_log_level",
    "publish_model",
    "run_logging",
    "save_model",
    "take_hub_push",
    "write_curves",
    "write_results",
]

#: One logger for every step of the run, under the name its lines have always carried (users filter on it).
logger = logging.getLogger("protconv.downstream.finetune")
#: The run's log, in the output folder beside the model.
LOG_FILE = "protconv.log"


@contextmanager
def run_logging(training_args: TrainingArguments) -> Iterator[None]:
    """protconv's loggers at ``--log_level`` (INFO when it is ``passive``, Trainer's default, which leaves
    transformers' own verbosity alone) on stderr; the run's log file (``open_run_log``) is closed at the end."""
    configure_logging(protconv_log_level(training_args.log_level), main_process=training_args.should_log)
    try:
        yield
    finally:
        configure_logging(protconv_log_level(training_args.log_level), main_process=training_args.should_log)


def open_run_log(training_args: TrainingArguments, output: Path) -> None:
    """Add ``OUTPUT/protconv.log`` once the run is known to start: a command refused for its input leaves no
    output folder behind (without ``--output_dir``, Trainer's default is a folder in the working directory)."""
    level = protconv_log_level(training_args.log_level)
    configure_logging(level, output / LOG_FILE, main_process=training_args.should_log)


def protconv_log_level(trainer_level: str) -> str:
    """``TrainingArguments.log_level`` as a level of protconv's loggers."""
    return {"passive": "info", "detail": "debug"}.get(trainer_level, trainer_level)


def log_data(
    splits: Mapping[Split, LabelledSequences],
    classes: list[str] | None,
    truncated: Mapping[Split, int],
    max_length: int | None,
) -> None:
    """What the run trains and scores on: rows and lengths per split, the classes, and what truncation cuts."""
    for split, data in splits.items():
        lengths = [len(sequence) for sequence in data.sequences]
        skipped = f"; {len(set(data.skipped))} bad rows skipped" if data.skipped else ""
        logger.info(
            "%s: %d sequences, %d-%d residues (median %d)%s",
            split, len(data), min(lengths), max(lengths), int(np.median(lengths)), skipped,
        )  # fmt: skip
    if classes:
        shown = ", ".join(classes[:20]) + (f", ... ({len(classes)} in all)" if len(classes) > 20 else "")
        logger.info("classes in id order (config.id2label): %s", shown)
    if max_length is None:
        return
    cut = {split: count for split, count in truncated.items() if count}
    if not cut:
        logger.info("--max_length %d: no sequence is longer, none truncated", max_length)
        return
    counts = ", ".join(f"{count} of {len(splits[split])} {split}" for split, count in cut.items())
    logger.warning(
        "--max_length %d truncates %s sequences: the model sees only their first %d tokens, in training and in "
        "evaluation (per-residue scores cover the residues kept)",
        max_length, counts, max_length,
    )  # fmt: skip


def log_parameters(model: torch.nn.Module) -> None:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("parameters: %s trainable of %s", f"{trainable:,}", f"{total:,}")


def prediction_tables(
    args: FinetuneArguments,
    splits: Mapping[Split, LabelledSequences],
    evaluated: Mapping[Split, tuple[dict[str, float], np.ndarray]],
    config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    label_scale: tuple[float, float],
) -> dict[Split, SplitPredictions]:
    """Each evaluated split's predictions, in the names of ``config.id2label``, as ``protconv predict`` writes them."""
    window = ResidueWindow.of(tokenizer, args.max_length)
    return {
        split: split_predictions(args.task, splits[split], logits, config, label_scale, window)
        for split, (_, logits) in evaluated.items()
    }


def check_finite_weights(model: torch.nn.Module, what: str) -> None:
    """Raise ``NonFiniteError`` naming the first floating-point tensor of ``model`` that holds a NaN or inf."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteError(f"{what} has NaN/inf values in {name}; refusing to save it")


def save_model(
    trained: TrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    args: FinetuneArguments,
    label_scale: tuple[float, float],
    output: Path,
    results: dict[Split, dict[str, float]],
    training_args: TrainingArguments | None = None,
) -> None:
    """``OUTPUT/model``: the trained model made plain (``finalise_model``), checked finite before and after,
    with its card."""
    check_finite_weights(trained, "the fine-tuned model")
    final = finalise_model(trained, args, label_scale, output)
    check_finite_weights(final, "the model to save")
    card = _card(final, args, results, training_args)
    save_hub_folder(final, tokenizer, output / "model", card=card, overwrite=True)


def take_hub_push(training_args: TrainingArguments) -> str | None:
    """The repo ``--push_to_hub`` publishes to (``--hub_model_id``, else the output folder's name, as Trainer), with
    Trainer's own push turned off: it would upload ``OUTPUT/`` (checkpoints, a z-scored head, a log with local
    paths); ``publish_model`` uploads ``OUTPUT/model`` instead."""
    if not training_args.push_to_hub:
        return None
    training_args.push_to_hub = False
    return training_args.hub_model_id or Path(str(training_args.output_dir)).absolute().name


def publish_model(folder: Path, repo_id: str, training_args: TrainingArguments) -> str:
    """``OUTPUT/model`` (weights, code, tokenizer, card) to ``repo_id`` via ``push_folder`` (``protconv push``)."""
    url = push_folder(folder, repo_id, private=training_args.hub_private_repo, token=training_args.hub_token,
                      revision=training_args.hub_revision, commit_message="protconv finetune")  # fmt: skip
    logger.info("pushed %s to %s", folder, url)
    return url


#: Trainer's bookkeeping and the training objective (``loss_z``: on z-scored targets): not evaluation figures.
_NOT_CARD_METRICS = frozenset({"loss", "loss_z", "epoch", "runtime", "samples_per_second", "steps_per_second"})


def _training_details(args: FinetuneArguments, training_args: TrainingArguments | None) -> dict[str, object]:
    """The training arguments that matter for reading the figures: mode, learning rate, epochs, batch size, seed."""
    if training_args is None:
        return {"mode": args.mode}
    batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    epochs = training_args.num_train_epochs if training_args.max_steps <= 0 else f"{training_args.max_steps} steps"
    return {"mode": args.mode, "learning rate": training_args.learning_rate, "epochs": epochs,
            "batch size": f"{batch} per device", "seed": training_args.seed}  # fmt: skip


def _card(
    model: PreTrainedModel,
    args: FinetuneArguments,
    results: dict[Split, dict[str, float]],
    training_args: TrainingArguments | None = None,
) -> ModelCard:
    """The fine-tuned model's card: validation/test figures as ``model-index``, the base model and dataset as Hub
    metadata where they are Hub ids, and the fine-tuning arguments."""
    data = data_name(args.source)
    base = data_name(args.model)
    task_type = "token-classification" if args.task == "token-classification" else "text-classification"
    figures = [
        CardResult(task_type, data, metric, value, split=split)
        for split, metrics in results.items()
        for metric, value in metrics.items()
        if metric not in _NOT_CARD_METRICS
    ]
    arguments = config_yaml(asdict(args))
    trained = _training_details(args, training_args)
    settings = ", ".join(f"{key} {value}" for key, value in trained.items())
    training = f"`protconv finetune` from `{base}` on `{data}`: {settings}. Its arguments:\n\n```yaml\n{arguments}```"
    return build_card(
        model,
        f"{base} fine-tuned on {data} ({args.task})",
        f"A {args.task} model fine-tuned with `protconv finetune` from `{base}` on `{data}`. Report it beside the "
        "supervised baselines of `protconv baseline` on the same splits.",
        details={"task": args.task, "base model": base, "data": data, **trained},
        results=figures,
        sections={"Training": training},
        datasets=[args.dataset_name] if args.dataset_name else (),
        base_model=args.model,
        intended_use=args.task,
    )


def write_results(
    args: FinetuneArguments,
    output: Path,
    results: dict[Split, dict[str, float]],
    tables: dict[Split, SplitPredictions],
    *,
    classes: list[str] | None,
    truncated: dict[Split, int],
    splits: Mapping[Split, LabelledSequences],
) -> None:
    """``finetune_results.json`` and the predictions files, written once the model is saved (a failed run
    leaves none of them)."""
    written = _write_predictions(tables, output) if args.write_predictions else {}
    summary = {
        "results": {split: _json_metrics(metrics) for split, metrics in results.items()},
        "per_class": {split: table.per_class for split, table in tables.items() if table.per_class is not None},
        "classes": classes,
        "predictions": written,
        "max_length": args.max_length,
        "truncated": truncated,
        "skipped_rows": {split: len(rows.skipped) for split, rows in splits.items()},
        "args": asdict(args),
    }
    (output / "finetune_results.json").write_text(json.dumps(summary, indent=2, default=str, allow_nan=False))
    for split, metrics in results.items():
        logger.info("%s: %s", split, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    logger.info("saved %s; results in %s", output / "model", output / "finetune_results.json")


def _write_predictions(tables: dict[Split, SplitPredictions], output: Path) -> dict[Split, str]:
    written = {}
    for split, table in tables.items():
        path = output / f"{split}_predictions.csv"
        write_predictions(path, table)
        written[split] = path.name
    return written


def _json_metrics(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an undefined score is written as null, never left out."""
    return {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()}


def write_curves(state: TrainerState, args: TrainingArguments, output: Path, baseline: float | None = None) -> None:
    """``curves.png`` beside the results: loss and validation metric by step from Trainer's log history, the best
    checkpoint marked, ``baseline`` (a baseline's score, from ``evaluate``) as a line."""
    from ..plots.curves import plot_finetune_curves

    metric = args.metric_for_best_model if args.metric_for_best_model not in (None, "loss") else None
    best = state.best_global_step
    plot_finetune_curves(state.log_history, output / "curves.png", metric=metric, best_step=best, baseline=baseline)
