"""protconv's model families as the rest of the package sees them: Auto registration (run on import), presets,
and ``--model`` resolution, all derived from ``modeling.MODEL_FAMILIES`` (each family's registration table)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import transformers
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerFast
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .modeling import MODEL_FAMILIES, ProteinLMConfig


def register_auto_classes() -> None:
    """Idempotent: ``exist_ok`` lets a re-import (or remote code of the same model type) pass."""
    for config_class, models in MODEL_FAMILIES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto_name, model_class in models.items():
            getattr(transformers, auto_name).register(config_class, model_class, exist_ok=True)
        AutoTokenizer.register(config_class, fast_tokenizer_class=PreTrainedTokenizerFast, exist_ok=True)


def available_presets() -> dict[str, type[ProteinLMConfig]]:
    """Preset name -> the config class that defines it, over every family."""
    return {name: config_class for config_class in MODEL_FAMILIES for name in config_class.presets}


def has_saved_weights(model: str | Path) -> bool:
    """Whether ``model`` is a folder holding safetensors weights (``save_pretrained``'s output)."""
    path = Path(model)
    return path.is_dir() and any(path.glob("model*.safetensors*"))


def resolve_config(model: str, overrides: Mapping[str, Any] | None = None) -> PretrainedConfig:
    """A config from a preset name, a registered model type, a config.json or a model folder (in that order)."""
    overrides = dict(overrides or {})
    presets = available_presets()
    if model in presets:
        return presets[model].from_preset(model, **overrides)
    if model in CONFIG_MAPPING:
        return AutoConfig.for_model(model, **overrides)
    path = Path(model)
    if path.is_file() or (path / "config.json").is_file():
        return AutoConfig.from_pretrained(path, **overrides)
    model_types = sorted(config_class.model_type for config_class in MODEL_FAMILIES)
    raise ValueError(
        f"--model {model!r} is neither a preset ({', '.join(sorted(presets))}), a model type "
        f"({', '.join(model_types)}), nor a config.json / saved model folder"
    )
