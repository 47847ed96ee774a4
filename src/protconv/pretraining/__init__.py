"""Pretraining with accelerate, in the order a run goes: ``arguments`` (YAML + command line), ``model_setup``
(``--model`` -> model), ``pipeline`` (corpora -> this process's masked batches), ``loop`` (steps, validation,
export), ``checkpoints`` (crash-safe save and exact resume), ``metrics`` and ``plotting``.

Masked LM, MSA profile prediction or both (``pretraining_objective``). Nothing here imports ``downstream``.
"""

from .arguments import DataArguments, ModelArguments, PretrainingArguments, parse_arguments
from .checkpoints import CheckpointError
from .loop import NonFiniteLossError, PretrainingResult, pretrain
from .model_setup import build_pretraining_model

__all__ = [
    "CheckpointError",
    "DataArguments",
    "ModelArguments",
    "NonFiniteLossError",
    "PretrainingArguments",
    "PretrainingResult",
    "build_pretraining_model",
    "parse_arguments",
    "pretrain",
]
