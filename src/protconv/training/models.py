"""Resolve ``--model`` to a pretraining model through the Auto classes, for every registered model family.

Nothing here names a family: presets are discovered from the config classes registered in
``protconv.registration.MODEL_FAMILIES`` (each family's config module defines a ``*_PRESETS`` mapping and a
``from_preset`` class method), so a new family is pretrainable as soon as it is registered.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForPreTraining, PretrainedConfig, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .. import registration


def available_presets() -> dict[str, type[PretrainedConfig]]:
    """Preset name -> the config class that defines it, over every registered family."""
    presets: dict[str, type[PretrainedConfig]] = {}
    for config_class, _ in registration.MODEL_FAMILIES:
        for name in _family_presets(config_class):
            presets[name] = config_class
    return presets


def _family_presets(config_class: type[PretrainedConfig]) -> Mapping[str, Any]:
    module = sys.modules[config_class.__module__]
    if not hasattr(config_class, "from_preset"):
        return {}
    found: dict[str, Any] = {}
    for name, value in vars(module).items():
        if name.endswith("_PRESETS") and isinstance(value, Mapping):
            found.update(value)
    return found


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
    protconv_types = sorted(c.model_type for c, _ in registration.MODEL_FAMILIES)
    raise ValueError(
        f"--model {model!r} is neither a preset ({', '.join(sorted(presets))}), a model type "
        f"({', '.join(protconv_types)}), nor a config.json / saved model folder"
    )


def pretraining_auto_class(config: PretrainedConfig) -> type:
    """``AutoModelForMaskedLM`` for masked-LM pretraining (so plain MLM runs export the familiar class), else
    ``AutoModelForPreTraining`` (the family's model with a profile head, see ``config.pretraining_objective``)."""
    objective = getattr(config, "pretraining_objective", "mlm")
    return AutoModelForMaskedLM if objective == "mlm" else AutoModelForPreTraining


def build_model(model: str, overrides: Mapping[str, Any] | None = None) -> PreTrainedModel:
    """The pretraining model for ``model``'s config (with ``overrides``, e.g. ``pretraining_objective``): the
    weights of a saved folder (continued pretraining; a head the new objective adds starts fresh), else freshly
    initialised."""
    path = Path(model)
    has_weights = path.is_dir() and any(path.glob("model*.safetensors*"))
    config = resolve_config(model, overrides)
    if has_weights:
        return pretraining_auto_class(config).from_pretrained(path, config=config)
    return pretraining_auto_class(config).from_config(config)
