"""protconv's model families. Every file here imports only torch, transformers and its siblings, because
transformers copies them flat next to the weights for ``trust_remote_code``."""

from .configuration_conv import CONV_PRESETS, ConvConfig
from .modeling_conv import (
    ConvForMaskedLM,
    ConvForSequenceClassification,
    ConvForTokenClassification,
    ConvModel,
    ConvPreTrainedModel,
)

__all__ = [
    "CONV_PRESETS",
    "ConvConfig",
    "ConvForMaskedLM",
    "ConvForSequenceClassification",
    "ConvForTokenClassification",
    "ConvModel",
    "ConvPreTrainedModel",
]
