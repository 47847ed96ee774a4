"""The Performer protein language model (Choromanski et al. 2020, "Masked language modeling for proteins via
linearly scalable long-context transformers", arXiv 2006.03555) as transformers models.

A pre-LayerNorm Transformer encoder whose attention is FAVOR+ (``favor.py``): time and memory grow linearly with
length, so tens of thousands of residues fit on a CPU. The same weights run exact softmax attention when
``config.attention == "softmax"``. Positions are rotary by default (no length limit) or learned absolute.

The random projection of every layer is a persistent buffer: saved with the weights, reloaded exactly, never
changed in ``eval()``, and redrawn on a deterministic schedule in training (``feature_redraw_interval``). It is
part of the kernel, not a weight, and stays float32 whatever the model's dtype: ``from_pretrained(dtype=...)``
(``_keep_in_fp32_modules_strict``), ``model.to(torch.bfloat16)``/``.half()`` (``PerformerSelfAttention._apply``)
and construction under a half-precision default dtype all leave it float32, so that a model's features do not
depend on how it was cast, and saving a half-precision model does not round the projection for good.

``torch.compile(model, fullgraph=True)`` traces every forward without a graph break: value checks run in eager
mode only (``model_inputs.eager_checks``), and the training-time redraw runs inside the graph as an opaque
custom operator (``_redrawn_projections``), since drawing is host code (a hashed seed, a QR in float64).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import ClassVar, cast

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .auto_classes import register_family
from .configuration_performer import PerformerConfig
from .favor import (
    favor_attention,
    hashed_seed,
    orthogonal_random_features,
    softmax_attention,
    softmax_attention_weights,
)
from .hub_mixin import ProteinHubMixin
from .model_inputs import check_unsupported_inputs, checked_inputs
from .pooling import pool
from .task_models import (
    MaskedLMMixin,
    PreTrainingMixin,
    SequenceClassificationMixin,
    TaskMixin,
    TokenClassificationMixin,
)

#: The ``attn_implementation`` values of exact mode (``config.attention="softmax"``): ``"sdpa"`` (the default,
#: ``scaled_dot_product_attention``: fused kernels, no ``length x length`` probabilities kept) or ``"eager"``
#: (explicit ``softmax(q kᵀ / sqrt(d)) v``). FAVOR+ has one kernel of its own and ignores the choice.
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")

#: Why ``output_attentions=True`` fails in FAVOR+ mode.
FAVOR_HAS_NO_WEIGHTS = (
    "FAVOR+ (config.attention='favor') never forms the length x length attention matrix; set "
    "model.config.attention = 'softmax' to run exact attention on the same weights and get its probabilities"
)


def _draw(seed: int, layer_idx: int, draw: int, nb_features: int, head_dim: int, scaling: str) -> torch.Tensor:
    return orthogonal_random_features(nb_features, head_dim, hashed_seed(seed, layer_idx, draw), scaling)


def draw_projection(config: PerformerConfig, layer_idx: int, draw: int) -> torch.Tensor:
    """The projection of layer ``layer_idx`` after ``draw`` redraws: a function of the config's seed only."""
    head_dim = config.hidden_size // config.num_attention_heads
    return _draw(config.projection_seed, layer_idx, draw, config.nb_features, head_dim, config.projection_scaling)


def _op_name(function: str) -> str:
    """``protconv::<function>_<digest of this module's name>``: protconv's own copy of this file and each Hub
    folder's remote-code copy can be imported into one process, and an operator name registers only once."""
    return f"protconv::{function}_{hashlib.blake2b(__name__.encode(), digest_size=6).hexdigest()}"


@torch.library.custom_op(_op_name("redrawn_projections"), mutates_args=())
def _redrawn_projections(
    step: torch.Tensor, projections: list[torch.Tensor], interval: int, seed: int, nb_features: int, scaling: str
) -> list[torch.Tensor]:
    """The projections of layers 0, 1, ... at training step ``step``: draw ``step // interval`` of each when
    ``step`` is a multiple of ``interval``, otherwise copies of ``projections`` (an operator's outputs may not
    alias its inputs).

    An operator so that ``torch.compile`` calls it as it is rather than tracing host code: it reads the step
    (one host synchronisation per training step, as the schedule always did) and draws on the CPU.
    """
    current = int(step)
    if current % interval:
        return [projection.clone() for projection in projections]
    return [
        _draw(seed, layer, current // interval, nb_features, projection.shape[1], scaling).to(projection)
        for layer, projection in enumerate(projections)
    ]


@_redrawn_projections.register_fake
def _(
    step: torch.Tensor, projections: list[torch.Tensor], interval: int, seed: int, nb_features: int, scaling: str
) -> list[torch.Tensor]:
    return [torch.empty_like(projection) for projection in projections]


def rotary_tables(
    length: int, dim: int, base: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and signed ``sin`` of shape ``(length, dim)`` for rotary embeddings (rotate-half layout).

    The sine's first half is negated so that ``apply_rotary`` needs a swap of halves but no negation. Computed
    per call rather than cached in a buffer: it is cheap, has no length limit and cannot come back wrong from
    meta-device loading.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    sin = angles.sin()
    return torch.cat([angles, angles], dim=-1).cos().to(dtype), torch.cat([-sin, sin], dim=-1).to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs ``(x_i, x_{i+d/2})`` by position-dependent angles: q·k then depends on relative position."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([second, first], dim=-1) * signed_sin


class PerformerEmbeddings(nn.Module):
    """Token embeddings, plus learned absolute positions when configured (rotary positions act in attention)."""

    #: An ``nn.Embedding``, or whatever module ``set_input_embeddings`` was given (transformers allows any).
    word_embeddings: nn.Module

    def __init__(self, config: PerformerConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.position_embedding_type == "absolute"
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeddings = self.word_embeddings(input_ids)
        if self.position_embeddings is not None:
            length, limit = input_ids.shape[1], self.position_embeddings.num_embeddings
            if length > limit:
                raise ValueError(
                    f"sequence length {length} exceeds max_position_embeddings={limit} of this model's absolute "
                    "position embeddings; truncate the input, or use a model with position_embedding_type='rotary'"
                )
            embeddings = embeddings + self.position_embeddings(torch.arange(length, device=input_ids.device))
        return self.dropout(embeddings)


class PerformerSelfAttention(nn.Module):
    """Multi-head self-attention: FAVOR+ or exact softmax, chosen per call from ``config.attention``.

    ``projection`` ``(nb_features, head_dim)`` is shared by the heads of this layer, as in the reference
    implementations, and is part of the model state, in float32 whatever the weights' dtype.
    """

    projection: torch.Tensor  # a buffer (register_buffer)

    def __init__(self, config: PerformerConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # Filled by _init_weights (or loaded): drawing here would fail on the meta device used while loading.
        # float32 explicitly: from_pretrained(dtype=...) builds the model under that default dtype.
        projection = torch.empty(config.nb_features, self.head_dim, dtype=torch.float32)
        self.register_buffer("projection", projection, persistent=True)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> PerformerSelfAttention:
        """Module casts (``.to(torch.bfloat16)``, ``.half()``) move the projection but keep it float32.

        Rounding it to half precision would change the kernel itself (every feature), differently from a model
        loaded with ``from_pretrained(dtype=...)``, and a saved cast model would keep the rounded projection.
        """
        projection = self.projection
        super()._apply(fn, recurse)
        if self.projection.dtype in (torch.float16, torch.bfloat16) and projection.dtype == torch.float32:
            self.projection = projection.to(self.projection.device)
        return self

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_mask: torch.Tensor | None,
        rotary_cos: torch.Tensor | None,
        rotary_sin: torch.Tensor | None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``key_mask``: ``(batch, length)``, True at real tokens; None when nothing is padded.

        Returns the output and, with ``output_attentions`` (exact softmax mode only), the attention
        probabilities ``(batch, heads, length, length)``.
        """
        batch, length, hidden = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        if rotary_cos is not None and rotary_sin is not None:  # the two tables come together (rotary_tables)
            # Queries and keys rotated together; tables broadcast over (batch, q/k, head).
            cos, sin = rotary_cos[:, None, None], rotary_sin[:, None, None]
            qkv = torch.cat([apply_rotary(qkv[:, :, :2], cos, sin), qkv[:, :, 2:]], dim=2)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        weights = None
        if self.config.attention == "softmax":
            context, weights = self._exact_attention(q, k, v, key_mask, output_attentions)
        else:
            context = favor_attention(
                q,
                k,
                v,
                self.projection,
                key_mask,
                causal=self.config.causal,
                kernel=self.config.kernel,
                eps=self.config.kernel_epsilon,
            )
        return self.out_proj(context.transpose(1, 2).reshape(batch, length, hidden)), weights

    def _exact_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Exact softmax attention by ``config._attn_implementation``, and its probabilities when asked for.

        ``"sdpa"`` computes the probabilities separately (``output_attentions``), so that its output is the fused
        kernel's with or without them; ``"eager"`` multiplies its probabilities with ``v``, as ESM's eager path.
        """
        implementation, causal = self.config._attn_implementation or "sdpa", self.config.causal
        if implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(unsupported_attn_implementation(implementation))
        if implementation == "eager":
            weights = softmax_attention_weights(q, k, key_mask, causal=causal)
            return weights @ v, weights if output_attentions else None
        context = softmax_attention(q, k, v, key_mask, causal=causal)
        return context, softmax_attention_weights(q, k, key_mask, causal=causal) if output_attentions else None


def unsupported_attn_implementation(implementation: str) -> str:
    """The message for an ``attn_implementation`` the Performer does not run."""
    return (
        f"the Performer runs attn_implementation 'sdpa' (default) or 'eager' in exact mode (config.attention="
        f"'softmax'), got {implementation!r}; FAVOR+ (config.attention='favor') ignores attn_implementation"
    )


class PerformerLayer(GradientCheckpointingLayer):
    """Pre-LayerNorm block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` with a GELU MLP.

    Pre-LN trains stably without learning-rate warm-up tricks and keeps the residual stream unnormalised, as in
    the Performer protein models.
    """

    def __init__(self, config: PerformerConfig, layer_idx: int) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = PerformerSelfAttention(config, layer_idx)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.mlp_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_mask: torch.Tensor | None,
        rotary_cos: torch.Tensor | None = None,
        rotary_sin: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The block's output and, with ``output_attentions``, its attention probabilities (else ``None``)."""
        normed = self.attention_norm(hidden_states)
        attended, weights = self.attention(normed, key_mask, rotary_cos, rotary_sin, output_attentions)
        hidden_states = hidden_states + self.dropout(attended)
        update = self.mlp_out(self.act(self.mlp_in(self.mlp_norm(hidden_states))))
        return hidden_states + self.dropout(update), weights


class PerformerPreTrainedModel(ProteinHubMixin):
    config_class = PerformerConfig
    base_model_prefix = "performer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["PerformerLayer"]
    # The random projection is part of the kernel: from_pretrained(dtype=bf16/fp16) loads it in float32.
    _keep_in_fp32_modules_strict = ["attention.projection"]
    #: Default LoRA targets (``protconv.lora``): every matrix of the blocks, by a suffix that no head shares
    #: (the heads have an ``out_proj`` too).
    lora_target_modules: ClassVar[tuple[str, ...]] = ("attention.qkv", "attention.out_proj", "mlp_in", "mlp_out")
    # Losses are per-batch means: Trainer must average gradient-accumulation steps itself, not pass
    # num_items_in_batch (which it would, seeing a loss keyword, and then not divide).
    accepts_loss_kwargs = False
    # Exact mode runs scaled_dot_product_attention ("sdpa", the default) or "eager"; FAVOR+ ignores the choice.
    _supports_sdpa = True

    def get_correct_attn_implementation(self, requested_attention: str | None, is_init_check: bool = False) -> str:
        """transformers' choice (``"sdpa"`` unless asked otherwise), refused early when the Performer lacks it
        (flash and flex attention need kernels written for them; FAVOR+ is the Performer's fast path)."""
        implementation = super().get_correct_attn_implementation(requested_attention, is_init_check)
        if implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(unsupported_attn_implementation(implementation))
        return implementation

    def _init_weights(self, module: nn.Module) -> None:
        """BERT-style N(0, initializer_range) weights; projections drawn deterministically from the seed.

        The ``init`` helpers skip tensors that were loaded from a checkpoint, so a saved projection is kept and
        only a missing one is drawn afresh (draw 0 of its layer, identical in every process).
        """
        from transformers import initialization as init

        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, PerformerSelfAttention):
            init.copy_(module.projection, draw_projection(module.config, module.layer_idx, 0))
        elif isinstance(module, PerformerModel):
            init.zeros_(module.feature_redraw_step)


class PerformerModel(PerformerPreTrainedModel):
    """Embeddings, pre-LN Performer blocks and the final LayerNorm.

    ``hidden_states`` (with ``output_hidden_states=True``) are the embedding output followed by every block's
    output; ``last_hidden_state`` is the final LayerNorm of the last block's output, what the heads read;
    ``pooler_output`` is the pooled protein embedding (``config.pooling``; ``None`` when built with
    ``add_pooling_layer=False``, as the task models whose heads read every position are).

    ``feature_redraw_step`` counts training forward passes (persistent, so a resumed run keeps its schedule).
    """

    feature_redraw_step: torch.Tensor  # a buffer (register_buffer)

    # Loading the encoder alone from a checkpoint with a head is expected: don't report the head as unexpected.
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\.", r"^profile_head\.", r"^classifier\."]

    def __init__(self, config: PerformerConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.add_pooling_layer = add_pooling_layer
        self.embeddings = PerformerEmbeddings(config)
        self.layers = nn.ModuleList(PerformerLayer(config, index) for index in range(config.num_hidden_layers))
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.register_buffer("feature_redraw_step", torch.zeros((), dtype=torch.long), persistent=True)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings.word_embeddings = value

    def _advance_feature_schedule(self) -> None:
        """Count a training forward pass; on every ``feature_redraw_interval``-th, redraw all projections.

        Draw ``k`` happens at step ``k * interval``, so the projection in use is always draw
        ``step // interval`` of its layer: reproducible from the seed and the saved step counter alone. The
        buffers are rebound rather than written in place, so a graph that still holds the old projections
        (several forwards before one backward) stays valid.
        """
        config = self.config
        if not self.training or config.feature_redraw_interval == 0 or config.attention != "favor":
            return
        with torch.no_grad():
            self.feature_redraw_step += 1
        # nn.ModuleList is not generic: its items are the PerformerLayers built in __init__.
        attentions = [cast(PerformerLayer, layer).attention for layer in self.layers]
        projections = _redrawn_projections(
            self.feature_redraw_step,
            [attention.projection for attention in attentions],
            config.feature_redraw_interval,
            config.projection_seed,
            config.nb_features,
            config.projection_scaling,
        )
        for attention, projection in zip(attentions, projections, strict=True):
            attention.projection = projection

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """``attentions`` (``output_attentions=True``, exact softmax mode only): one ``(batch, heads, length,
        length)`` tensor of attention probabilities per layer. ``inputs_embeds`` is accepted by name only (it
        must be ``None``)."""
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        reason = FAVOR_HAS_NO_WEIGHTS if self.config.attention == "favor" else None
        check_unsupported_inputs(inputs_embeds, output_attentions, reason)
        input_ids, attention_mask = checked_inputs(
            input_ids, attention_mask, self.config.vocab_size, self.config.pad_token_id
        )
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        self._advance_feature_schedule()
        hidden = self.embeddings(input_ids)
        rotary_cos = rotary_sin = None
        if self.config.position_embedding_type == "rotary":
            head_dim = self.config.hidden_size // self.config.num_attention_heads
            rotary_cos, rotary_sin = rotary_tables(
                input_ids.shape[1], head_dim, self.config.rotary_base, hidden.device, hidden.dtype
            )
        key_mask = self._key_mask(attention_mask)
        all_hidden = [hidden] if output_hidden_states else None
        # With output_attentions every layer returns its weights (FAVOR+ refused it above).
        all_weights: list[torch.Tensor] | None = [] if output_attentions else None
        for layer in self.layers:
            hidden, weights = layer(hidden, key_mask, rotary_cos, rotary_sin, output_attentions)
            if all_hidden is not None:
                all_hidden.append(hidden)
            if all_weights is not None:
                all_weights.append(weights)
        last_hidden_state = self.final_layer_norm(hidden)
        pooled = pool(last_hidden_state, input_ids, attention_mask, self.config) if self.add_pooling_layer else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(all_weights) if all_weights is not None else None,
        )
        return output if return_dict is not False else output.to_tuple()

    def _key_mask(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """The padding mask the attention kernels get.

        FAVOR+ always takes it: an all-True mask gives bit for bit the unmasked result, and no host
        synchronisation is spent finding out. Exact softmax drops it when nothing is padded, so that
        ``scaled_dot_product_attention`` may pick a fused kernel; that decision reads the mask, so a compiled
        model keeps the mask (the same probabilities, possibly another kernel).
        """
        if self.config.attention != "softmax" or torch.compiler.is_compiling():
            return attention_mask
        return None if bool(attention_mask.all()) else attention_mask


# Copied from protconv.modeling.modeling_conv.ConvTaskModel with Conv->Performer, conv->performer
class PerformerTaskModel(TaskMixin, PerformerPreTrainedModel):
    """A ``PerformerModel`` backbone (``self.performer``) under the head of a task mixin (``task_models.py``)."""

    def __init__(self, config: PerformerConfig) -> None:
        super().__init__(config)
        self.performer = PerformerModel(config, add_pooling_layer=self.uses_pooled_output)
        self._build_heads(config)
        self.post_init()


class PerformerForMaskedLM(MaskedLMMixin, PerformerTaskModel):
    """PerformerModel with an untied linear decoder to the vocabulary (as the Conv family)."""


# Copied from protconv.modeling.modeling_conv.ConvForPreTraining with Conv->Performer, conv->performer
class PerformerForPreTraining(PreTrainingMixin, PerformerTaskModel):
    __doc__ = PreTrainingMixin.__doc__


# Copied from protconv.modeling.modeling_conv.ConvForSequenceClassification with Conv->Performer, conv->performer
class PerformerForSequenceClassification(SequenceClassificationMixin, PerformerTaskModel):
    __doc__ = SequenceClassificationMixin.__doc__


# Copied from protconv.modeling.modeling_conv.ConvForTokenClassification with Conv->Performer, conv->performer
class PerformerForTokenClassification(TokenClassificationMixin, PerformerTaskModel):
    __doc__ = TokenClassificationMixin.__doc__


#: The Performer registration table: Auto class name -> model class (``auto_classes.AUTO_MODEL_SUFFIXES``).
# Copied from protconv.modeling.modeling_conv.CONV_MODEL_CLASSES with Conv->Performer, CONV->PERFORMER
PERFORMER_MODEL_CLASSES = register_family(
    PerformerConfig,
    PerformerModel,
    PerformerForMaskedLM,
    PerformerForPreTraining,
    PerformerForSequenceClassification,
    PerformerForTokenClassification,
)
