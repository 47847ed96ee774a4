"""Fine-tuning with ``transformers.Trainer`` on downstream tasks: full, frozen backbone, or LoRA (peft).

Users get Trainer's own features unchanged (eval/save strategy, best-model selection, bf16, accumulation,
activation checkpointing, resume): protconv supplies the data, the collator, the metrics and the model, and
writes a Hub-ready folder at the end. Regression targets are normalised for training and the normalisation is
folded back into the head's last layer before saving, so the saved model predicts in the assay's units.

Nothing non-finite gets through: NaN/inf labels are bad rows (``task_data``), a non-finite training loss stops
the run at that step, NaN predictions are never scored, and weights holding a NaN/inf are never saved; each
raises ``NonFiniteError``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    HfArgumentParser,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from ..data.task_files import LabelledSequences
from ..hub import model_card, save_hub_folder
from ..registry import has_saved_weights, load_pretrained, resolve_config
from ..tokenization import build_tokenizer
from .metrics import NonFiniteError, metrics_for
from .task_data import TaskCollator, TaskDataArguments, TaskDataset, TaskType, load_task_splits

__all__ = ["FinetuneArguments", "NonFiniteError", "finetune", "parse_finetune_arguments"]

Mode = Literal["full", "frozen", "lora"]
logger = logging.getLogger(__name__)


@dataclass
class FinetuneArguments(TaskDataArguments):
    """The model and how to adapt it. Trainer's own options come from ``TrainingArguments`` beside these."""

    model: str = field(
        default="carp-600k", metadata={"help": "a saved protconv model folder, or a preset name to train from scratch"}
    )
    num_labels: int | None = field(default=None, metadata={"help": "classification: default max label + 1"})
    mode: Mode = field(default="full", metadata={"help": "full | frozen (head only) | lora"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    normalize_labels: bool = field(default=True, metadata={"help": "regression: train on z-scored targets"})
    max_length: int | None = field(default=1024, metadata={"help": "truncate longer sequences (tokens)"})


def num_labels_for(args: FinetuneArguments, splits: dict[str, LabelledSequences], classes: str | None) -> int:
    if args.task == "regression":
        return 1
    if args.task == "token-classification":
        return len(classes or "")
    return args.num_labels or 1 + max(max(data.labels) for data in splits.values())


def load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    """The folder's own tokenizer when it has one (e.g. CARP conversions add no <cls>/<eos>), else protconv's."""
    if (Path(model) / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(model)
    return build_tokenizer()


def build_task_model(model: str, task: TaskType, num_labels: int) -> PreTrainedModel:
    """A task model from a saved folder's backbone (its LM head is dropped), or freshly initialised from a preset."""
    auto = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    overrides = {"num_labels": num_labels}
    if task == "regression":
        overrides["problem_type"] = "regression"
    elif task == "classification":
        overrides["problem_type"] = "single_label_classification"
    if has_saved_weights(model):
        return load_pretrained(auto, model, **overrides)
    return auto.from_config(resolve_config(model, overrides))


def prepare_mode(model: PreTrainedModel, args: FinetuneArguments) -> PreTrainedModel:
    """Freeze the backbone (``frozen``) or wrap in LoRA adapters on every backbone Linear (``lora``)."""
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
        target_modules=_backbone_linear_names(model),
        modules_to_save=["classifier"],
    )
    return get_peft_model(model, config)


def _backbone_linear_names(model: PreTrainedModel) -> list[str]:
    """Suffix names of the backbone's Linear layers, the LoRA targets (the head is trained in full instead)."""
    prefix = model.base_model_prefix + "."
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.startswith(prefix)
        }
    )


def fold_label_scale(model: PreTrainedModel, mean: float, std: float) -> None:
    """Make the regression head predict raw units: out * std + mean, folded into the last Linear layer."""
    out_proj = model.classifier.out_proj
    with torch.no_grad():
        out_proj.weight.mul_(std)
        out_proj.bias.mul_(std).add_(mean)


def finetune(args: FinetuneArguments, training_args: TrainingArguments) -> dict[str, dict[str, float]]:
    """Fine-tune, evaluate on valid/test, save a Hub-ready folder to ``<output_dir>/model``; returns metrics.

    Raises ``NonFiniteError`` (and writes no model) if the loss, the predictions or the weights go NaN/inf.
    """
    splits, classes = load_task_splits(args, training_args.seed)
    label_scale = (0.0, 1.0)
    if args.task == "regression" and args.normalize_labels:
        label_scale = regression_label_scale(splits["train"].labels, args.train_file)
    tokenizer = load_tokenizer(args.model)
    model = build_task_model(args.model, args.task, num_labels_for(args, splits, classes))
    model = prepare_mode(model, args)
    datasets = {
        split: TaskDataset(data, tokenizer, args.task, args.max_length, label_scale) for split, data in splits.items()
    }
    if training_args.label_names is None:
        training_args.label_names = ["labels"]
    trainer = FiniteLossTrainer(
        model=model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets.get("valid"),
        data_collator=TaskCollator(tokenizer, args.task),
        processing_class=tokenizer,
        compute_metrics=metrics_for(args.task, label_scale),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    results = {split: _evaluate(trainer, datasets[split], split) for split in ("valid", "test") if split in datasets}
    output = Path(training_args.output_dir)
    check_finite_weights(trainer.model, "the fine-tuned model")
    final = _finalise(trainer.model, args, label_scale, output)
    check_finite_weights(final, "the model to save")
    details = {"task": args.task, "mode": args.mode, "train file": Path(args.train_file).name}
    details.update({f"{split} {k}": f"{v:.4f}" for split, metrics in results.items() for k, v in metrics.items()})
    card = model_card(final, f"protconv fine-tuned ({args.task})", "Fine-tuned with `protconv finetune`.", details)
    save_hub_folder(final, tokenizer, output / "model", card=card, overwrite=True)
    summary = {
        "results": {split: _json_metrics(metrics) for split, metrics in results.items()},
        "skipped_rows": {s: len(d.skipped) for s, d in splits.items()},
        "args": asdict(args),
    }
    (output / "finetune_results.json").write_text(json.dumps(summary, indent=2, default=str, allow_nan=False))
    return results


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


def _evaluate(trainer: Trainer, dataset: TaskDataset, split: str) -> dict[str, float]:
    try:
        metrics = _strip_prefix(trainer.evaluate(dataset, metric_key_prefix=split), split)
    except NonFiniteError as error:
        raise NonFiniteError(f"{split} split: {error}") from error
    if not math.isfinite(metrics.get("loss", 0.0)):
        raise NonFiniteError(f"{split} split: the evaluation loss is {metrics['loss']} (no model saved)")
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            logger.warning("%s %s is undefined (%s), e.g. constant predictions; reported as such", split, name, value)
    return metrics


def check_finite_weights(model: torch.nn.Module, what: str) -> None:
    """Raise ``NonFiniteError`` naming the first floating-point tensor of ``model`` that holds a NaN or inf."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteError(f"{what} has NaN/inf values in {name}; refusing to save it")


def _finalise(
    model: PreTrainedModel, args: FinetuneArguments, label_scale: tuple[float, float], output: Path
) -> PreTrainedModel:
    """Save LoRA adapters on their own (``<output>/lora_adapter``), then merge them and fold the label scale,
    giving a plain model that loads anywhere without peft."""
    if args.mode == "lora":
        model.save_pretrained(output / "lora_adapter")
        model = model.merge_and_unload()
    if args.task == "regression" and label_scale != (0.0, 1.0):
        fold_label_scale(model, *label_scale)
    return model


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
    parser = HfArgumentParser((FinetuneArguments, TrainingArguments), prog=prog)
    if argv and len(argv) == 1 and argv[0].endswith(".json"):
        path = Path(argv[0])
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of argument names to values")
        try:
            return parser.parse_dict(values)
        except (TypeError, ValueError) as error:  # unknown keys, a missing required argument
            raise ValueError(f"{path}: {error}") from error
    return parser.parse_args_into_dataclasses(args=argv)
