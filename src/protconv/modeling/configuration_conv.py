"""Configuration of the dilated-CNN (ByteNet) protein language model of CARP (Yang, Fusi, Lu 2022)."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from .objectives import (
    DEFAULT_NUM_PROFILE_CLASSES,
    DEFAULT_PROFILE_LOSS_SCALE,
    DEFAULT_PROFILE_TASK_WEIGHT,
    validate_pretraining_fields,
)
from .vocabulary import CLS_TOKEN_ID, EOS_TOKEN_ID, MASK_TOKEN_ID, PAD_TOKEN_ID, VOCAB_SIZE

#: Every Auto class a Conv checkpoint answers to. Written into each saved config so that a folder loads with
#: ``trust_remote_code=True`` through any of them, not only through the class that happened to save it.
CONV_AUTO_MAP: dict[str, str] = {
    "AutoConfig": "configuration_conv.ConvConfig",
    "AutoModel": "modeling_conv.ConvModel",
    "AutoModelForMaskedLM": "modeling_conv.ConvForMaskedLM",
    "AutoModelForPreTraining": "modeling_conv.ConvForPreTraining",
    "AutoModelForSequenceClassification": "modeling_conv.ConvForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_conv.ConvForTokenClassification",
}

#: The four published CARP models (Zenodo record 6564798). ``intermediate_size`` is CARP's d_h ("slim" blocks
#: halve d_model; carp-640m is not slim).
CONV_PRESETS: dict[str, dict[str, int]] = {
    "carp-600k": {"hidden_size": 128, "intermediate_size": 64, "num_hidden_layers": 16},
    "carp-38m": {"hidden_size": 1024, "intermediate_size": 512, "num_hidden_layers": 16},
    "carp-76m": {"hidden_size": 1024, "intermediate_size": 512, "num_hidden_layers": 32},
    "carp-640m": {"hidden_size": 1280, "intermediate_size": 1280, "num_hidden_layers": 56},
}


class ConvConfig(PretrainedConfig):
    """Hyper-parameters of ``ConvModel`` and its heads.

    Names follow transformers conventions; CARP's names are given for conversion: ``embedding_size`` = d_embed,
    ``hidden_size`` = d_model, ``intermediate_size`` = d_h, ``max_dilation`` = r (dilations 1, 2, ..., r repeat
    through the layers), ``hidden_act`` = activation.

    ``pooling`` is how sequence-level heads summarise residues: ``"mean"`` over real residues (never padding or
    special tokens) or ``"cls"`` (the ``<cls>`` token; needs a tokenizer that adds it).

    Pretraining (``*ForPreTraining``): ``pretraining_objective`` is ``"mlm"``, ``"profile"`` (predict each residue's
    MSA-column amino-acid distribution, ``num_profile_classes`` = 20 in the order ``ACDEFGHIKLMNPQRSTVWY``) or
    ``"mlm+profile"``, trained on ``(1 - a) * MLM + a * profile_loss_scale * KL`` with
    ``a = profile_task_weight / (profile_task_weight + 1)`` (Sturmfels et al. 2020: weight 3, scale 10).
    """

    model_type = "protconv_conv"

    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        embedding_size: int = 8,
        hidden_size: int = 128,
        intermediate_size: int = 64,
        num_hidden_layers: int = 16,
        kernel_size: int = 5,
        max_dilation: int = 128,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-5,
        hidden_dropout_prob: float = 0.0,
        classifier_dropout: float = 0.1,
        initializer_range: float = 0.02,
        pooling: str = "mean",
        pad_token_id: int = PAD_TOKEN_ID,
        mask_token_id: int = MASK_TOKEN_ID,
        cls_token_id: int = CLS_TOKEN_ID,
        eos_token_id: int = EOS_TOKEN_ID,
        pretraining_objective: str = "mlm",
        profile_task_weight: float = DEFAULT_PROFILE_TASK_WEIGHT,
        profile_loss_scale: float = DEFAULT_PROFILE_LOSS_SCALE,
        num_profile_classes: int = DEFAULT_NUM_PROFILE_CLASSES,
        **kwargs: Any,
    ) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so that 'same' padding is symmetric, got {kernel_size}")
        if max_dilation < 1 or max_dilation & (max_dilation - 1):
            raise ValueError(f"max_dilation must be a power of two, got {max_dilation}")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        validate_pretraining_fields(pretraining_objective, profile_task_weight, profile_loss_scale, num_profile_classes)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.kernel_size = kernel_size
        self.max_dilation = max_dilation
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        self.pooling = pooling
        self.pretraining_objective = pretraining_objective
        self.profile_task_weight = profile_task_weight
        self.profile_loss_scale = profile_loss_scale
        self.num_profile_classes = num_profile_classes
        self.mask_token_id = mask_token_id
        self.cls_token_id = cls_token_id
        kwargs.setdefault("auto_map", dict(CONV_AUTO_MAP))
        kwargs.setdefault("bos_token_id", cls_token_id)  # <cls> opens sequences; Trainer checks it matches
        super().__init__(pad_token_id=pad_token_id, eos_token_id=eos_token_id, **kwargs)

    @property
    def dilations(self) -> list[int]:
        """Dilation of each block: 1, 2, 4, ..., max_dilation, then again from 1 (CARP's 2**(i % (log2 r + 1)))."""
        cycle = self.max_dilation.bit_length()
        return [2 ** (layer % cycle) for layer in range(self.num_hidden_layers)]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ConvConfig:
        """Config of a published CARP size (``carp-600k``, ``carp-38m``, ``carp-76m``, ``carp-640m``)."""
        if name not in CONV_PRESETS:
            raise ValueError(f"unknown Conv preset {name!r}; choose one of {sorted(CONV_PRESETS)}")
        return cls(**{**CONV_PRESETS[name], **overrides})
