"""The model that ``protconv finetune`` trains and the one it saves.

Built for ``--model`` (a saved folder's backbone, or a preset from scratch) with the task's head, then adapted
for ``--mode``: trained in full, backbone frozen, or LoRA adapters. Regression trains on z-scored targets; the
scale is folded back into the head's last layer before saving, and LoRA adapters are merged, so the saved model
is a plain one that predicts in the assay's units and loads anywhere without peft.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, cast

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, PreTrainedModel

from ..data.task_files import LabelledSequences
from ..data.tasks.vocabulary import TaskType
from ..lora import default_lora_targets
from ..metrics import NonFiniteError
from ..registry import has_saved_weights, load_pretrained, resolve_config
from .finetune_arguments import FinetuneArguments

if TYPE_CHECKING:
    from peft import PeftModel

__all__ = [
    "TrainedModel",
    "build_task_model",
    "finalise_model",
    "fold_label_scale",
    "label_maps",
    "num_labels_for",
    "prepare_mode",
    "regression_label_scale",
    "training_label_scale",
]

#: What Trainer trains: the task model, or under ``--mode lora`` peft's wrapper of it.
TrainedModel: TypeAlias = "PreTrainedModel | PeftModel"


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


def training_label_scale(args: FinetuneArguments, train: LabelledSequences) -> tuple[float, float]:
    """(mean, std) that the targets are z-scored with during training: (0, 1), no change, unless a regression
    run normalises its labels (``--normalize_labels``, the default)."""
    if args.task == "regression" and args.normalize_labels:
        return regression_label_scale(train.labels, args.source)
    return 0.0, 1.0


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


def fold_label_scale(model: PreTrainedModel, mean: float, std: float) -> None:
    """Make the regression head predict raw units: out * std + mean, folded into the last Linear layer."""
    out_proj = model.get_submodule("classifier.out_proj")
    if not isinstance(out_proj, torch.nn.Linear):  # every protconv task head ends in one
        raise TypeError(f"the regression head's out_proj is a {type(out_proj).__name__}, not a Linear layer")
    with torch.no_grad():
        out_proj.weight.mul_(std)
        out_proj.bias.mul_(std).add_(mean)


def finalise_model(
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
