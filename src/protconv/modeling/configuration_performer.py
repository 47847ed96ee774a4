"""Configuration of the Performer protein language model (FAVOR+ linear attention, Choromanski et al. 2020)."""

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

#: Every Auto class a Performer checkpoint answers to. Written into each saved config so that a folder loads with
#: ``trust_remote_code=True`` through any of them, not only through the class that happened to save it.
PERFORMER_AUTO_MAP: dict[str, str] = {
    "AutoConfig": "configuration_performer.PerformerConfig",
    "AutoModel": "modeling_performer.PerformerModel",
    "AutoModelForMaskedLM": "modeling_performer.PerformerForMaskedLM",
    "AutoModelForPreTraining": "modeling_performer.PerformerForPreTraining",
    "AutoModelForSequenceClassification": "modeling_performer.PerformerForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_performer.PerformerForTokenClassification",
}

#: Sizes. ``performer-small`` (0.6M parameters) matches carp-600k for like-for-like comparisons,
#: ``performer-base`` (38M) matches carp-38m, ``performer-trembl`` is the 36-layer model of the Performer protein
#: paper (d 512, 8 heads). All use 64-dimensional heads, the setting FAVOR+'s 256 features were tuned for.
PERFORMER_PRESETS: dict[str, dict[str, int]] = {
    "performer-small": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 3, "num_attention_heads": 2},
    "performer-base": {
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
    },
    "performer-trembl": {
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 36,
        "num_attention_heads": 8,
    },
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "attention": ("favor", "softmax"),
    "kernel": ("softmax", "relu"),
    "position_embedding_type": ("rotary", "absolute"),
    "projection_scaling": ("chi", "sqrt"),
    "pooling": ("mean", "cls"),
}


class PerformerConfig(PretrainedConfig):
    """Hyper-parameters of ``PerformerModel`` and its heads.

    Attention:

    * ``attention``: ``"favor"`` (FAVOR+, linear in length) or ``"softmax"`` (exact, through
      ``scaled_dot_product_attention``). Both read the same weights, so a trained model can be switched for
      quality/speed comparisons by setting ``model.config.attention``.
    * ``kernel``: ``"softmax"`` (positive orthogonal random features approximating softmax attention) or
      ``"relu"`` (the "generalized" kernel of the Performer protein experiments).
    * ``nb_features``: random features per head (m). ``kernel_epsilon``: the features' additive constant
      (``None``: 1e-6 for softmax, 1e-3 for relu). ``projection_scaling``: row norms of the projection,
      ``"chi"`` (unbiased) or ``"sqrt"``.
    * ``causal``: autoregressive attention (prefix sums) instead of bidirectional.
    * ``feature_redraw_interval``: in training, the projection is redrawn every this many forward passes
      (0 = never). ``projection_seed``: redraw ``k`` of layer ``i`` is a function of (seed, i, k) only, so runs and
      data-parallel replicas agree. In ``eval()`` the projection never changes.

    Positions: ``position_embedding_type`` ``"rotary"`` (default; no length limit) or ``"absolute"`` (learned,
    at most ``max_position_embeddings`` tokens).

    ``pooling`` is how sequence-level heads summarise residues: ``"mean"`` over real residues (never padding or
    special tokens) or ``"cls"`` (the ``<cls>`` token; needs a tokenizer that adds it).

    Pretraining (``*ForPreTraining``): ``pretraining_objective`` is ``"mlm"``, ``"profile"`` (predict each residue's
    MSA-column amino-acid distribution, ``num_profile_classes`` = 20 in the order ``ACDEFGHIKLMNPQRSTVWY``) or
    ``"mlm+profile"``, trained on ``(1 - a) * MLM + a * profile_loss_scale * KL`` with
    ``a = profile_task_weight / (profile_task_weight + 1)`` (Sturmfels et al. 2020: weight 3, scale 10).
    """

    model_type = "protconv_performer"

    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        hidden_size: int = 128,
        num_hidden_layers: int = 3,
        num_attention_heads: int = 2,
        intermediate_size: int = 512,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        attention: str = "favor",
        kernel: str = "softmax",
        nb_features: int = 256,
        kernel_epsilon: float | None = None,
        projection_scaling: str = "chi",
        causal: bool = False,
        feature_redraw_interval: int = 1000,
        projection_seed: int = 0,
        position_embedding_type: str = "rotary",
        max_position_embeddings: int = 1024,
        rotary_base: float = 10000.0,
        classifier_dropout: float = 0.1,
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
        for name, value in (
            ("attention", attention),
            ("kernel", kernel),
            ("position_embedding_type", position_embedding_type),
            ("projection_scaling", projection_scaling),
            ("pooling", pooling),
        ):
            if value not in _CHOICES[name]:
                raise ValueError(f"{name} must be one of {_CHOICES[name]}, got {value!r}")
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}")
        if position_embedding_type == "rotary" and (hidden_size // num_attention_heads) % 2:
            raise ValueError("rotary positions need an even head dimension (hidden_size / num_attention_heads)")
        if nb_features < 1:
            raise ValueError(f"nb_features must be positive, got {nb_features}")
        if feature_redraw_interval < 0:
            raise ValueError(f"feature_redraw_interval must be >= 0 (0 = never), got {feature_redraw_interval}")
        validate_pretraining_fields(pretraining_objective, profile_task_weight, profile_loss_scale, num_profile_classes)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.attention = attention
        self.kernel = kernel
        self.nb_features = nb_features
        self.kernel_epsilon = kernel_epsilon
        self.projection_scaling = projection_scaling
        self.causal = causal
        self.feature_redraw_interval = feature_redraw_interval
        self.projection_seed = projection_seed
        self.position_embedding_type = position_embedding_type
        self.max_position_embeddings = max_position_embeddings
        self.rotary_base = rotary_base
        self.classifier_dropout = classifier_dropout
        self.pooling = pooling
        self.pretraining_objective = pretraining_objective
        self.profile_task_weight = profile_task_weight
        self.profile_loss_scale = profile_loss_scale
        self.num_profile_classes = num_profile_classes
        self.mask_token_id = mask_token_id
        self.cls_token_id = cls_token_id
        kwargs.setdefault("auto_map", dict(PERFORMER_AUTO_MAP))
        kwargs.setdefault("bos_token_id", cls_token_id)  # <cls> opens sequences; Trainer checks it matches
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(pad_token_id=pad_token_id, eos_token_id=eos_token_id, **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> PerformerConfig:
        """Config of a named size (``performer-small``, ``performer-base``, ``performer-trembl``)."""
        if name not in PERFORMER_PRESETS:
            raise ValueError(f"unknown Performer preset {name!r}; choose one of {sorted(PERFORMER_PRESETS)}")
        return cls(**{**PERFORMER_PRESETS[name], **overrides})
