"""protconv's model families. Every file here imports only torch, transformers and its siblings, because
transformers copies them flat next to the weights for ``trust_remote_code``.

Reading order: ``vocabulary`` (tokens), ``configuration_base`` then ``configuration_<family>`` (hyper-parameters),
``modeling_<family>`` (the backbone and its task models), which use ``favor`` (attention), ``pooling``,
``heads``, ``losses``, ``task_models`` and ``auto_classes`` (the registration table).
"""

from .configuration_base import ProteinLMConfig
from .configuration_conv import CONV_PRESETS, ConvConfig
from .configuration_performer import PERFORMER_PRESETS, PerformerConfig
from .losses import profile_kl_loss
from .modeling_conv import (
    CONV_MODEL_CLASSES,
    ConvForMaskedLM,
    ConvForPreTraining,
    ConvForSequenceClassification,
    ConvForTokenClassification,
    ConvModel,
    ConvPreTrainedModel,
)
from .modeling_performer import (
    PERFORMER_MODEL_CLASSES,
    PerformerForMaskedLM,
    PerformerForPreTraining,
    PerformerForSequenceClassification,
    PerformerForTokenClassification,
    PerformerModel,
    PerformerPreTrainedModel,
)
from .outputs import ProteinPreTrainingOutput

#: Every family: its config class -> its registration table (Auto class name -> model class).
MODEL_FAMILIES = {ConvConfig: CONV_MODEL_CLASSES, PerformerConfig: PERFORMER_MODEL_CLASSES}

__all__ = [
    "CONV_PRESETS",
    "MODEL_FAMILIES",
    "PERFORMER_PRESETS",
    "ConvConfig",
    "ConvForMaskedLM",
    "ConvForPreTraining",
    "ConvForSequenceClassification",
    "ConvForTokenClassification",
    "ConvModel",
    "ConvPreTrainedModel",
    "PerformerConfig",
    "PerformerForMaskedLM",
    "PerformerForPreTraining",
    "PerformerForSequenceClassification",
    "PerformerForTokenClassification",
    "PerformerModel",
    "PerformerPreTrainedModel",
    "ProteinLMConfig",
    "ProteinPreTrainingOutput",
    "profile_kl_loss",
]
