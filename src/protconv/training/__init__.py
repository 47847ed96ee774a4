"""Pretraining with accelerate: arguments, the data pipeline of a process, the loop, checkpoints and metrics."""

from .args import DataArguments, ModelArguments, PretrainingArguments, parse_arguments
from .checkpoints import CheckpointError
from .loop import NonFiniteLossError, PretrainingResult, pretrain
from .models import available_presets, build_model, resolve_config

__all__ = [
    "CheckpointError",
    "DataArguments",
    "ModelArguments",
    "NonFiniteLossError",
    "PretrainingArguments",
    "PretrainingResult",
    "available_presets",
    "build_model",
    "parse_arguments",
    "pretrain",
    "resolve_config",
]
