"""Configuration of the Performer protein language model (FAVOR+ linear attention, Choromanski et al. 2020)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from .configuration_base import ProteinLMConfig

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

Attention = Literal["favor", "softmax"]
Kernel = Literal["softmax", "relu"]
PositionEmbeddingType = Literal["rotary", "absolute"]
ProjectionScaling = Literal["chi", "sqrt"]
_CHOICES: dict[str, tuple[str, ...]] = {
    "attention": get_args(Attention),
    "kernel": get_args(Kernel),
    "position_embedding_type": get_args(PositionEmbeddingType),
    "projection_scaling": get_args(ProjectionScaling),
}


class PerformerConfig(ProteinLMConfig):
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

    Kernel of exact mode: ``attn_implementation`` (``from_pretrained(..., attn_implementation=...)``, as for ESM)
    ``"sdpa"`` (default, ``scaled_dot_product_attention``) or ``"eager"``; other values are refused. FAVOR+ mode
    ignores it (FAVOR+ is its own kernel), so one model switches between the two with ``config.attention``.
    ``output_attentions`` works with both (sdpa computes the probabilities beside its fused output).

    Positions: ``position_embedding_type`` ``"rotary"`` (default; no length limit) or ``"absolute"`` (learned,
    at most ``max_position_embeddings`` tokens).

    Pooling, token ids and the pretraining objective are the fields of ``ProteinLMConfig``, shared by every family.
    """

    model_type = "protconv_performer"
    family = "Performer"
    presets = PERFORMER_PRESETS

    def __init__(
        self,
        num_hidden_layers: int = 3,
        num_attention_heads: int = 2,
        intermediate_size: int = 512,
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
        **kwargs: Any,
    ) -> None:
        for name, value in (
            ("attention", attention),
            ("kernel", kernel),
            ("position_embedding_type", position_embedding_type),
            ("projection_scaling", projection_scaling),
        ):
            if value not in _CHOICES[name]:
                raise ValueError(f"{name} must be one of {_CHOICES[name]}, got {value!r}")
        if nb_features < 1:
            raise ValueError(f"nb_features must be positive, got {nb_features}")
        if feature_redraw_interval < 0:
            raise ValueError(f"feature_redraw_interval must be >= 0 (0 = never), got {feature_redraw_interval}")
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
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
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
        if self.hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {num_attention_heads}"
            )
        if position_embedding_type == "rotary" and (self.hidden_size // num_attention_heads) % 2:
            raise ValueError("rotary positions need an even head dimension (hidden_size / num_attention_heads)")

    # transformers refuses output_attentions=True unless attn_implementation is "eager", because its sdpa
    # kernels cannot return probabilities; the Performer's sdpa path computes them (PerformerSelfAttention).
    @property
    def output_attentions(self) -> bool:
        return bool(self._output_attentions)

    @output_attentions.setter
    def output_attentions(self, value: bool) -> None:
        self._output_attentions = value
