"""The model a pretraining run trains: ``--model`` (preset, model type, config or saved folder) resolved through
the Auto classes, for every registered family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, PretrainedConfig, PreTrainedModel

from ..modeling.configuration_base import MLM
from ..registry import has_saved_weights, load_pretrained, resolve_config

if TYPE_CHECKING:
    from transformers.models.auto.auto_factory import _BaseAutoModelClass


def pretraining_auto_class(config: PretrainedConfig) -> type[_BaseAutoModelClass]:
    """``AutoModelForMaskedLM`` for masked-LM pretraining (so plain MLM runs export the familiar class), else
    ``AutoModelForPreTraining`` (the family's model with a profile head, see ``config.pretraining_objective``)."""
    objective = getattr(config, "pretraining_objective", MLM)
    return AutoModelForMaskedLM if objective == MLM else AutoModelForPreTraining


def build_pretraining_model(model: str, overrides: Mapping[str, Any] | None = None) -> PreTrainedModel:
    """The pretraining model for ``model``'s config (with ``overrides``, e.g. ``pretraining_objective``): the
    weights of a saved folder (continued pretraining; a head the new objective adds starts fresh), else freshly
    initialised."""
    config = resolve_config(model, overrides)
    if has_saved_weights(model):
        return load_pretrained(pretraining_auto_class(config), model, config=config)
    return pretraining_auto_class(config).from_config(config)
