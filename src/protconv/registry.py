"""protconv's model families as the rest of the package sees them: Auto registration (run on import), presets,
and ``--model`` resolution, all derived from ``modeling.MODEL_FAMILIES`` (each family's registration table)."""

from __future__ import annotations

import difflib
import inspect
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import transformers
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .modeling import MODEL_FAMILIES, ProteinLMConfig

if TYPE_CHECKING:
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

#: ``modeling.MODEL_FAMILIES`` (each family's config class -> its registration table, Auto class name -> model
#: class) with the key type spelled out: the dict literal there is inferred as ``dict[type, dict[str, Any]]``.
FAMILIES: Mapping[type[ProteinLMConfig], Mapping[str, Any]] = MODEL_FAMILIES


def register_auto_classes() -> None:
    """Idempotent: ``exist_ok`` lets a re-import (or remote code of the same model type) pass."""
    for config_class, models in FAMILIES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto_name, model_class in models.items():
            getattr(transformers, auto_name).register(config_class, model_class, exist_ok=True)
        AutoTokenizer.register(config_class, fast_tokenizer_class=PreTrainedTokenizerFast, exist_ok=True)


def protconv_model_types() -> set[str]:
    """The ``model_type`` of every family (``protconv_conv``, ``protconv_performer``)."""
    return {config_class.model_type for config_class in FAMILIES}


def available_presets() -> dict[str, type[ProteinLMConfig]]:
    """Preset name -> the config class that defines it, over every family."""
    return {name: config_class for config_class in FAMILIES for name in config_class.presets}


#: Weight files a folder may hold, in the order transformers prefers them. ``pytorch_model*.bin`` is a pickle:
#: transformers loads it with ``torch.load(weights_only=True)``, which refuses any object but tensors.
LOADABLE_WEIGHTS = ("model*.safetensors", "model*.safetensors.index.json", "pytorch_model*.bin")
#: Weight-like files that protconv cannot load safely (arbitrary pickles, other frameworks).
UNLOADABLE_WEIGHTS = ("*.pt", "*.pth", "*.ckpt", "*.pkl", "*.bin", "tf_model.h5", "flax_model.msgpack")


class WeightsFormatError(ValueError):
    """A model folder holds weights, but none in a format protconv loads safely."""


def has_saved_weights(model: str | Path) -> bool:
    """Whether ``model`` is a folder holding weights that load safely (safetensors, or a tensors-only
    ``pytorch_model.bin``). A folder whose only weights are in another format raises ``WeightsFormatError``:
    training must never silently start from random weights when weights were given."""
    path = Path(model)
    if not path.is_dir():
        return False
    if any(any(path.glob(pattern)) for pattern in LOADABLE_WEIGHTS):
        return True
    others = sorted({file.name for pattern in UNLOADABLE_WEIGHTS for file in path.glob(pattern)})
    if others:
        raise WeightsFormatError(
            f"{path} holds weights as {', '.join(others)}, which protconv does not load (only model.safetensors, "
            "or a tensors-only pytorch_model.bin); convert them with save_pretrained in a trusted environment"
        )
    return False


def load_pretrained(auto_class: type[_BaseAutoModelClass], model: str | Path, **kwargs: Any) -> PreTrainedModel:
    """``auto_class.from_pretrained(model, **kwargs)`` with ``weights_only=True``; a ``pytorch_model.bin`` holding
    anything but tensors (a pickle that would run code) is refused as a ``WeightsFormatError``."""
    return _from_pretrained(auto_class, model, **kwargs)


def load_pretrained_with_info(
    auto_class: type[_BaseAutoModelClass], model: str | Path, **kwargs: Any
) -> tuple[PreTrainedModel, dict[str, list[str]]]:
    """``load_pretrained`` with ``output_loading_info=True``: the model and what loading found (``missing_keys``,
    ``unexpected_keys``...), for a command that must refuse a checkpoint lacking the weights it needs."""
    return _from_pretrained(auto_class, model, output_loading_info=True, **kwargs)


def _from_pretrained(auto_class: type[_BaseAutoModelClass], model: str | Path, **kwargs: Any) -> Any:
    """``Any``: ``from_pretrained`` returns the model, or ``(model, info)`` with ``output_loading_info=True``."""
    try:
        return auto_class.from_pretrained(model, weights_only=True, **kwargs)
    except pickle.UnpicklingError as error:
        raise WeightsFormatError(
            f"{model}: refused to load its pytorch_model.bin, which holds objects other than tensors ({error})"
        ) from error


def resolve_config(model: str, overrides: Mapping[str, Any] | None = None) -> PretrainedConfig:
    """A config from a preset name, a registered model type, a config.json or a model folder (in that order).

    Every key of ``overrides`` must be a field of that config: a misspelled field (``hiden_size``) is an error, not
    a silently ignored attribute.
    """
    overrides = dict(overrides or {})
    presets = available_presets()
    if model in presets:
        config_class = presets[model]
        _check_override_keys(config_class, overrides)
        return config_class.from_preset(model, **overrides)
    if model in CONFIG_MAPPING:
        _check_override_keys(CONFIG_MAPPING[model], overrides)
        return AutoConfig.for_model(model, **overrides)
    path = Path(model)
    if path.is_file() or (path / "config.json").is_file():
        _check_override_keys(type(AutoConfig.from_pretrained(path)), overrides)
        return AutoConfig.from_pretrained(path, **overrides)
    model_types = sorted(protconv_model_types())
    raise ValueError(
        f"--model {model!r} is neither a preset ({', '.join(sorted(presets))}), a model type "
        f"({', '.join(model_types)}), nor a config.json / saved model folder"
    )


def _check_override_keys(config_class: type[PretrainedConfig], overrides: Mapping[str, Any]) -> None:
    known = set(config_class().to_dict()) | set(inspect.signature(config_class.__init__).parameters) | {"num_labels"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        hints = [
            f"{key!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(key, known, n=1))
            else repr(key)
            for key in unknown
        ]
        raise ValueError(f"unknown {config_class.model_type} config field(s): {', '.join(hints)}")
