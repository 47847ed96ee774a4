"""What ``protconv finetune`` is asked to do: the model and how to adapt it, read from the command line or JSON.

Trainer's own options stay Trainer's (``TrainingArguments`` beside these), so every Trainer feature reaches the
run unchanged; only the task data (``TaskDataArguments``) and the model choices are protconv's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import DataClass, DataClassType

from .task_data import TaskDataArguments

__all__ = ["FinetuneArguments", "Mode", "parse_finetune_arguments"]

Mode = Literal["full", "frozen", "lora"]


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
