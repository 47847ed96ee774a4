"""protconv's model families. Every file here imports only torch, transformers and its siblings, because
transformers copies them flat next to the weights for ``trust_remote_code``."""

from .configuration_conv import CONV_PRESETS, ConvConfig
from .configuration_performer import PERFORMER_PRESETS, PerformerConfig
from .heads import ProteinPreTrainingOutput, profile_kl_loss
from .modeling_conv import (
    ConvForMaskedLM,
    ConvForPreTraining,
    ConvForSequenceClassification,
    ConvForTokenClassification,
    ConvModel,
    ConvPreTrainedModel,
)
from .modeling_performer import (
    PerformerForMaskedLM,
    PerformerForPreTraining,
    PerformerForSequenceClassification,
    PerformerForTokenClassification,
    PerformerModel,
    PerformerPreTrainedModel,
)

__all__ = [
    "CONV_PRESETS",
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
    "ProteinPreTrainingOutput",
    "profile_kl_loss",
]
