"""LoRA for protconv models with plain peft: default target modules per family.

peft finds the modules to adapt, when ``LoraConfig`` names none, in its table keyed by ``config.model_type``
(``peft.utils.constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``). ``import protconv`` adds the
protconv families to it (``register_peft_defaults``) when peft is installed, so that::

    import protconv
    from peft import LoraConfig, TaskType, get_peft_model

    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS))

adapts every weight matrix of the residual blocks (``default_lora_targets``):

- Conv: ``proj_in``, ``dilated_conv`` (the dilated convolution, the only layer that mixes positions) and
  ``proj_out``. The convolution's LoRA factors get its dilation (``modeling_conv.DilatedConv1d``): the update is
  a dilated low-rank convolution, zero at initialisation, and merges exactly into the convolution's weight.
- Performer: ``attention.qkv``, ``attention.out_proj``, ``mlp_in`` and ``mlp_out``. The attention's output
  projection is named with its parent because the classification heads have an ``out_proj`` too; with a suffix
  naming one kind of module, a head is never adapted by accident (the task heads are trained in full through
  peft's ``modules_to_save``, ``classifier`` for SEQ_CLS and TOKEN_CLS).

Neither the embeddings nor the heads are targets. The table lives on the model classes
(``lora_target_modules``), next to the modules it names. Models loaded with ``trust_remote_code`` where protconv
is not installed have no peft defaults: pass ``target_modules`` (the lists above) yourself.
"""

from __future__ import annotations

from transformers import PretrainedConfig, PreTrainedModel

from .registry import FAMILIES, protconv_model_types


def default_lora_targets(model_or_config: PreTrainedModel | PretrainedConfig) -> list[str]:
    """The ``target_modules`` peft uses by default for this protconv model (or config), as module-name suffixes.

    Raises ``ValueError`` for a model type that is not a protconv family.
    """
    config = getattr(model_or_config, "config", model_or_config)
    return _targets_for(getattr(config, "model_type", None))


def _targets_for(model_type: str | None) -> list[str]:
    for config_class, table in FAMILIES.items():
        if config_class.model_type == model_type:
            return list(table["AutoModel"].lora_target_modules)
    known = sorted(protconv_model_types())
    raise ValueError(f"model_type {model_type!r} is not a protconv family; expected one of {known}")


def register_peft_defaults() -> bool:
    """Add every protconv family to peft's default LoRA targets; ``False`` (and nothing done) without peft.

    Called by ``import protconv``. Idempotent: the entries are protconv's own model types.
    """
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as targets
    except ImportError:
        return False
    for config_class in FAMILIES:
        targets[config_class.model_type] = _targets_for(config_class.model_type)
    return True
