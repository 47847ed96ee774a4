"""Register protconv's configs, models and tokenizer with the transformers Auto classes (run on import)."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)

from .modeling import (
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

#: (config class, {Auto class: model class}) for every model family.
MODEL_FAMILIES = [
    (
        ConvConfig,
        {
            AutoModel: ConvModel,
            AutoModelForMaskedLM: ConvForMaskedLM,
            AutoModelForPreTraining: ConvForPreTraining,
            AutoModelForSequenceClassification: ConvForSequenceClassification,
            AutoModelForTokenClassification: ConvForTokenClassification,
        },
    ),
    (
        PerformerConfig,
        {
            AutoModel: PerformerModel,
            AutoModelForMaskedLM: PerformerForMaskedLM,
            AutoModelForPreTraining: PerformerForPreTraining,
            AutoModelForSequenceClassification: PerformerForSequenceClassification,
            AutoModelForTokenClassification: PerformerForTokenClassification,
        },
    ),
]


def register_auto_classes() -> None:
    """Idempotent: ``exist_ok`` lets a re-import (or remote code of the same model type) pass."""
    for config_class, models in MODEL_FAMILIES:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
        AutoTokenizer.register(config_class, fast_tokenizer_class=PreTrainedTokenizerFast, exist_ok=True)
