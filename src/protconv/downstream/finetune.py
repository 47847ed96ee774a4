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
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

import numpy as np
import torch
from huggingface_hub import ModelCard
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    HfArgumentParser,
    PretrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)
from transformers.hf_argparser import DataClass, DataClassType

from ..data.task_files import LabelledSequences
from ..data.tasks.vocabulary import Split, TaskType
from ..hub import save_hub_folder
from ..lora import default_lora_targets
from ..metrics import NonFiniteError, metrics_for
from ..model_card import CardResult, build_card, config_yaml, data_name
from ..model_source import load_tokenizer, position_limit
from ..registry import has_saved_weights, load_pretrained, resolve_config
from ..run_logging import configure_logging
from .predictions import ResidueWindow, SplitPredictions, split_predictions, write_predictions
from .task_data import TaskCollator, TaskDataArguments, TaskDataset, count_truncated, load_task_splits

if TYPE_CHECKING:
    from peft import PeftModel

__all__ = ["FinetuneArguments", "NonFiniteError", "SequenceLengthError", "finetune", "parse_finetune_arguments"]

Mode = Literal["full", "frozen", "lora"]
#: What Trainer trains: the task model, or under ``--mode lora`` peft's wrapper of it.
TrainedModel: TypeAlias = "PreTrainedModel | PeftModel"
logger = logging.getLogger(__name__)
#: The run's log, in the output folder beside the model.
LOG_FILE = "protconv.log"


class SequenceLengthError(ValueError):
    """A sequence is longer than the model can take (learned absolute positions), and no truncation was asked."""


@dataclass
class FinetuneArguments(TaskDataArguments):
    """The model and how to adapt it. Trainer's own options come from ``TrainingArguments`` beside these."""

    model: str = field(
        default="carp-600k", metadata={"help": "a saved protconv model folder, or a preset name to train from scratch"}
    )
    num_labels: int | None = field(
        default=None,
        metadata={"help": "classification: the number of classes, checked against the data (default: found)"},
    )
    mode: Mode = field(default="full", metadata={"help": "full | frozen (head only) | lora"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    normalize_labels: bool = field(default=True, metadata={"help": "regression: train on z-scored targets"})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "truncate sequences to this many tokens (special tokens included; per-residue labels are cut with "
            "them). Default: no truncation; a model with learned absolute positions refuses longer sequences"
        },
    )
    write_predictions: bool = field(
        default=True, metadata={"help": "write OUTPUT/{valid,test}_predictions.csv (protconv predict's columns)"}
    )


def num_labels_for(task: TaskType, classes: list[str] | None) -> int:
    return 1 if task == "regression" else len(classes or ())


def build_task_model(model: str, task: TaskType, num_labels: int, classes: list[str] | None = None) -> PreTrainedModel:
    """A task model from a saved folder's backbone (its LM head is dropped), or freshly initialised from a preset;
    ``classes`` become ``config.id2label``/``label2id``."""
    auto = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    overrides = {"num_labels": num_labels, **label_maps(classes)}
    if task == "regression":
        overrides["problem_type"] = "regression"
    elif task == "classification":
        overrides["problem_type"] = "single_label_classification"
    if has_saved_weights(model):
        return load_pretrained(auto, model, **overrides)
    return auto.from_config(resolve_config(model, overrides))


def label_maps(classes: list[str] | None) -> dict[str, dict]:
    """``id2label``/``label2id`` overrides for a config (none without class names)."""
    if not classes:
        return {}
    return {"id2label": dict(enumerate(classes)), "label2id": {name: i for i, name in enumerate(classes)}}


def prepare_mode(model: PreTrainedModel, args: FinetuneArguments) -> TrainedModel:
    """Freeze the backbone (``frozen``) or wrap in LoRA adapters on the family's default targets (``lora``,
    ``protconv.lora``: the same modules plain peft picks for a protconv model); the head is trained in full."""
    if args.mode == "full":
        return model
    if args.mode == "frozen":
        for param in model.base_model.parameters():
            param.requires_grad_(False)
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise ImportError("mode='lora' needs peft: pip install 'protconv[lora]'") from error
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=default_lora_targets(model),
        modules_to_save=["classifier"],
    )
    return get_peft_model(model, config)


def fold_label_scale(model: PreTrainedModel, mean: float, std: float) -> None:
    """Make the regression head predict raw units: out * std + mean, folded into the last Linear layer."""
    out_proj = model.get_submodule("classifier.out_proj")
    if not isinstance(out_proj, torch.nn.Linear):  # every protconv task head ends in one
        raise TypeError(f"the regression head's out_proj is a {type(out_proj).__name__}, not a Linear layer")
    with torch.no_grad():
        out_proj.weight.mul_(std)
        out_proj.bias.mul_(std).add_(mean)


def finetune(args: FinetuneArguments, training_args: TrainingArguments) -> dict[Split, dict[str, float]]:
    """Fine-tune, evaluate on valid/test, save a Hub-ready folder to ``<output_dir>/model``; returns metrics.

    Raises ``NonFiniteError`` (and writes no model) if the loss, the predictions or the weights go NaN/inf, and
    ``SequenceLengthError`` before any training if a sequence is too long for the model.
    """
    if training_args.output_dir is None:  # not reached: TrainingArguments defaults it to trainer_output
        raise ValueError("TrainingArguments.output_dir is not set")
    output = Path(training_args.output_dir)
    with run_logging(training_args):
        return _finetune(args, training_args, output)


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


def _finetune(args: FinetuneArguments, training_args: TrainingArguments, output: Path) -> dict[Split, dict[str, float]]:
    splits, classes = load_task_splits(args, training_args.seed, args.num_labels)
    label_scale = (0.0, 1.0)
    if args.task == "regression" and args.normalize_labels:
        label_scale = regression_label_scale(splits["train"].labels, args.source)
    config = resolve_config(args.model)  # first: it names a --model that is neither a folder nor a preset
    tokenizer = load_tokenizer(args.model)
    special_tokens = tokenizer.num_special_tokens_to_add(pair=False)
    truncated = check_lengths(splits, config, special_tokens, args.max_length)
    # Logged once the data and the model are known good: a user error before this point is one line on stderr.
    open_run_log(training_args, output)
    logger.info("fine-tuning %s for %s (mode %s) on %s", args.model, args.task, args.mode, args.source)
    log_data(splits, classes, truncated, args.max_length)
    model = build_task_model(args.model, args.task, num_labels_for(args.task, classes), classes)
    config = model.config
    trainable = prepare_mode(model, args)
    log_parameters(trainable)
    datasets = {
        split: TaskDataset(data, tokenizer, args.task, args.max_length, label_scale) for split, data in splits.items()
    }
    if training_args.label_names is None:
        training_args.label_names = ["labels"]
    trainer = FiniteLossTrainer(
        model=trainable,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets.get("valid"),
        # transformers types a collator as returning dict; its own collators return BatchEncoding, as this one does
        data_collator=TaskCollator(tokenizer, args.task),  # type: ignore[arg-type]
        processing_class=tokenizer,
        compute_metrics=metrics_for(args.task, label_scale),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    evaluated: dict[Split, tuple[dict[str, float], np.ndarray]] = {
        split: _evaluate(trainer, datasets[split], split) for split in ("valid", "test") if split in datasets
    }
    results = {split: metrics for split, (metrics, _) in evaluated.items()}
    window = ResidueWindow.of(tokenizer, args.max_length)
    tables = {  # in the names of config.id2label, as protconv predict writes them
        split: split_predictions(args.task, splits[split], logits, config, label_scale, window)
        for split, (_, logits) in evaluated.items()
    }
    trained = cast(TrainedModel, trainer.model)  # the model it was given (Trainer types it loosely)
    check_finite_weights(trained, "the fine-tuned model")
    final = _finalise(trained, args, label_scale, output)
    check_finite_weights(final, "the model to save")
    save_hub_folder(final, tokenizer, output / "model", card=_card(final, args, results), overwrite=True)
    _write_results(args, output, results, tables, classes=classes, truncated=truncated, splits=splits)
    return results


def _write_results(
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


#: Trainer's bookkeeping and the training objective (on z-scored targets for regression): not evaluation figures.
_NOT_CARD_METRICS = frozenset({"loss", "epoch", "runtime", "samples_per_second", "steps_per_second"})


def _card(model: PreTrainedModel, args: FinetuneArguments, results: dict[Split, dict[str, float]]) -> ModelCard:
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
    training = f"`protconv finetune` ({args.mode}) from `{base}` on `{data}`, with:\n\n```yaml\n{arguments}```"
    return build_card(
        model,
        f"{base} fine-tuned on {data} ({args.task})",
        f"A {args.task} model fine-tuned with `protconv finetune` from `{base}` on `{data}`. Report it beside the "
        "supervised baselines of `protconv baseline` on the same splits.",
        details={"task": args.task, "mode": args.mode, "base model": base, "data": data},
        results=figures,
        sections={"Training": training},
        datasets=[args.dataset_name] if args.dataset_name else (),
        base_model=args.model,
    )


def _write_predictions(tables: dict[Split, SplitPredictions], output: Path) -> dict[Split, str]:
    written = {}
    for split, table in tables.items():
        path = output / f"{split}_predictions.csv"
        write_predictions(path, table)
        written[split] = path.name
    return written


def check_lengths(
    splits: Mapping[Split, LabelledSequences], config: PretrainedConfig, special_tokens: int, max_length: int | None
) -> dict[Split, int]:
    """How many sequences of each split ``max_length`` truncates. Without ``max_length``, a sequence longer than
    the model's position limit raises ``SequenceLengthError`` naming it (and how many more there are)."""
    limit = position_limit(config)
    if max_length is not None:
        if max_length <= special_tokens:
            raise ValueError(
                f"--max_length {max_length} leaves no room for a residue ({special_tokens} special tokens)"
            )
        if limit is not None and max_length > limit:
            raise SequenceLengthError(
                f"--max_length {max_length} exceeds this model's max_position_embeddings={limit} (learned absolute "
                f"positions); use --max_length {limit} or less"
            )
        return {split: count_truncated(data, max_length, special_tokens) for split, data in splits.items()}
    if limit is not None:
        for split, data in splits.items():
            over = [i for i, sequence in enumerate(data.sequences) if len(sequence) + special_tokens > limit]
            if over:
                first = over[0]
                raise SequenceLengthError(
                    f"{data.names[first]} ({split} split): {len(data.sequences[first]) + special_tokens} tokens "
                    f"(special tokens included) exceed this model's max_position_embeddings={limit} (learned "
                    f"absolute positions); {len(over)} {split} sequence(s) are too long. Pass --max_length {limit} "
                    "to truncate them, or use a model with rotary positions or a Conv model"
                )
    return dict.fromkeys(splits, 0)


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


def regression_label_scale(labels: list[float], source: str) -> tuple[float, float]:
    """(mean, std) of the training labels for z-scoring; both must be finite (a std of 0 becomes 1)."""
    values = np.asarray(labels, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(values.mean()), float(values.std())
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise NonFiniteError(
            f"{source}: the training labels have mean {mean} and standard deviation {std}; they cannot be "
            "normalised (labels must be finite numbers of a sane magnitude; or pass --normalize_labels false)"
        )
    return mean, std or 1.0


class FiniteLossTrainer(Trainer):
    """``Trainer`` that stops at the first non-finite training loss.

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


def _evaluate(trainer: Trainer, dataset: TaskDataset, split: Split) -> tuple[dict[str, float], np.ndarray]:
    """The split's metrics (logged like ``Trainer.evaluate``'s) and the model's outputs, in dataset order."""
    try:
        output = trainer.predict(dataset, metric_key_prefix=split)
    except NonFiniteError as error:
        raise NonFiniteError(f"{split} split: {error}") from error
    if output.metrics is None:  # not reached: predict always scores (its loss at least)
        raise ValueError(f"{split} split: Trainer.predict returned no metrics")
    trainer.log(output.metrics)
    metrics = _strip_prefix(output.metrics, split)
    if not math.isfinite(metrics.get("loss", 0.0)):
        raise NonFiniteError(f"{split} split: the evaluation loss is {metrics['loss']} (no model saved)")
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            logger.warning("%s %s is undefined (%s), e.g. constant predictions; reported as such", split, name, value)
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return metrics, np.asarray(logits)


def check_finite_weights(model: torch.nn.Module, what: str) -> None:
    """Raise ``NonFiniteError`` naming the first floating-point tensor of ``model`` that holds a NaN or inf."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteError(f"{what} has NaN/inf values in {name}; refusing to save it")


def _finalise(
    model: TrainedModel, args: FinetuneArguments, label_scale: tuple[float, float], output: Path
) -> PreTrainedModel:
    """Save LoRA adapters on their own (``<output>/lora_adapter``), then merge them and fold the label scale,
    giving a plain model that loads anywhere without peft."""
    if args.mode == "lora":
        adapted = cast("PeftModel", model)  # prepare_mode wrapped it
        adapted.save_pretrained(str(output / "lora_adapter"))
        model = adapted.merge_and_unload()
    plain = cast(PreTrainedModel, model)  # without adapters (or once they are merged), the task model itself
    if args.task == "regression" and label_scale != (0.0, 1.0):
        fold_label_scale(plain, *label_scale)
    return plain


def _strip_prefix(metrics: dict[str, float], split: str) -> dict[str, float]:
    """Trainer's ``valid_spearman`` -> ``spearman``; timings are dropped. Every score is kept, NaN included."""
    cleaned = {key.removeprefix(f"{split}_"): value for key, value in metrics.items()}
    return {
        k: v for k, v in cleaned.items() if isinstance(v, int | float) and "runtime" not in k and "per_second" not in k
    }


def _json_metrics(metrics: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an undefined score is written as null, never left out."""
    return {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in metrics.items()}


def parse_finetune_arguments(
    argv: list[str] | None = None, prog: str | None = None
) -> tuple[FinetuneArguments, TrainingArguments]:
    """``--config file.yaml`` is not needed here: TrainingArguments already reads JSON via HfArgumentParser
    (a single ``.json`` argument). ``prog`` names the command in ``--help`` and in argument errors."""
    parser = HfArgumentParser((DataClassType(FinetuneArguments), DataClassType(TrainingArguments)), prog=prog)
    if argv and len(argv) == 1 and argv[0].endswith(".json"):
        path = Path(argv[0])
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of argument names to values")
        try:
            parsed = parser.parse_dict(values)
        except (TypeError, ValueError) as error:  # unknown keys, a missing required argument
            raise ValueError(f"{path}: {error}") from error
        return _typed_arguments(parsed)
    return _typed_arguments(parser.parse_args_into_dataclasses(args=argv))


def _typed_arguments(parsed: tuple[DataClass, ...]) -> tuple[FinetuneArguments, TrainingArguments]:
    """HfArgumentParser's result, typed: one instance of each dataclass it was given, in that order."""
    finetune_args, training_args = parsed
    if not isinstance(finetune_args, FinetuneArguments) or not isinstance(training_args, TrainingArguments):
        raise TypeError(f"expected FinetuneArguments and TrainingArguments, got {[type(p).__name__ for p in parsed]}")
    return finetune_args, training_args
