"""protconv: fast, long-context protein language models as first-class Hugging Face citizens.

Importing the package registers every protconv model with the transformers Auto classes.
"""

from .modeling import (
    CONV_PRESETS,
    PERFORMER_PRESETS,
    ConvConfig,
    ConvForMaskedLM,
    ConvForPreTraining,
    ConvForSequenceClassification,
    ConvForTokenClassification,
    ConvModel,
    PerformerConfig,
    PerformerForMaskedLM,
    PerformerForPreTraining,
    PerformerForSequenceClassification,
    PerformerForTokenClassification,
    PerformerModel,
)
from .registration import register_auto_classes
from .tokenization import InvalidSequenceError, build_tokenizer, clean_sequence

register_auto_classes()

__version__ = "0.1.0"

__all__ = [
    "CONV_PRESETS",
    "PERFORMER_PRESETS",
    "ConvConfig",
    "ConvForMaskedLM",
    "ConvForPreTraining",
    "ConvForSequenceClassification",
    "ConvForTokenClassification",
    "ConvModel",
    "InvalidSequenceError",
    "PerformerConfig",
    "PerformerForMaskedLM",
    "PerformerForPreTraining",
    "PerformerForSequenceClassification",
    "PerformerForTokenClassification",
    "PerformerModel",
    "build_tokenizer",
    "clean_sequence",
]
