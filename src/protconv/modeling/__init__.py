"""protconv's model families. Every file here imports only torch, transformers and its siblings, because
transformers copies them flat next to the weights for ``trust_remote_code``."""

from .configuration_conv import CONV_PRESETS, ConvConfig
from .configuration_performer import PERFORMER_PRESETS, PerformerConfig
from .modeling_conv import (
    ConvForMaskedLM,
    ConvForSequenceClassification,
    ConvForTokenClassification,
    ConvModel,
    ConvPreTrainedModel,
)
from .modeling_performer import (
    PerformerForMaskedLM,
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
    "ConvForSequenceClassification",
    "ConvForTokenClassification",
    "ConvModel",
    "ConvPreTrainedModel",
    "PerformerConfig",
    "PerformerForMaskedLM",
    "PerformerForSequenceClassification",
    "PerformerForTokenClassification",
    "PerformerModel",
    "PerformerPreTrainedModel",
]
