"""The Performer protein language model (Choromanski et al. 2020, "Masked language modeling for proteins via
linearly scalable long-context transformers", arXiv 2006.03555) as transformers models.

A pre-LayerNorm Transformer encoder whose attention is FAVOR+ (``favor.py``): time and memory grow linearly with
length, so tens of thousands of residues fit on a CPU. The same weights run exact softmax attention when
``config.attention == "softmax"``. Positions are rotary by default (no length limit) or learned absolute.

The random projection of every layer is a persistent buffer: saved with the weights, reloaded exactly, never
changed in ``eval()``, and redrawn on a deterministic schedule in training (``feature_redraw_interval``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .auto_classes import register_family
from .configuration_performer import PerformerConfig
from .favor import favor_attention, hashed_seed, orthogonal_random_features, softmax_attention
from .model_inputs import checked_attention_mask
from .pooling import pool
from .task_models import MaskedLMMixin, PreTrainingMixin, SequenceClassificationMixin, TokenClassificationMixin


def draw_projection(config: PerformerConfig, layer_idx: int, draw: int) -> torch.Tensor:
    """The projection of layer ``layer_idx`` after ``draw`` redraws: a function of the config's seed only."""
    head_dim = config.hidden_size // config.num_attention_heads
    seed = hashed_seed(config.projection_seed, layer_idx, draw)
    return orthogonal_random_features(config.nb_features, head_dim, seed, config.projection_scaling)


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
    implementations, and is part of the model state.
    """

    def __init__(self, config: PerformerConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # Filled by _init_weights (or loaded): drawing here would fail on the meta device used while loading.
        self.register_buffer("projection", torch.empty(config.nb_features, self.head_dim), persistent=True)

    @torch.no_grad()
    def redraw_projection(self, draw: int) -> None:
        """Replace the projection by draw number ``draw`` of this layer.

        The buffer is rebound rather than written in place, so a graph that still holds the old projection
        (e.g. several forwards before one backward) stays valid.
        """
        fresh = draw_projection(self.config, self.layer_idx, draw)
        self.projection = fresh.to(device=self.projection.device, dtype=self.projection.dtype)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_mask: torch.Tensor | None,
        rotary_cos: torch.Tensor | None,
        rotary_sin: torch.Tensor | None,
    ) -> torch.Tensor:
        """``key_mask``: ``(batch, length)``, True at real tokens; None when nothing is padded."""
        batch, length, hidden = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        if rotary_cos is not None:
            # Queries and keys rotated together; tables broadcast over (batch, q/k, head).
            cos, sin = rotary_cos[:, None, None], rotary_sin[:, None, None]
            qkv = torch.cat([apply_rotary(qkv[:, :, :2], cos, sin), qkv[:, :, 2:]], dim=2)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.config.attention == "softmax":
            context = softmax_attention(q, k, v, key_mask, causal=self.config.causal)
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
        return self.out_proj(context.transpose(1, 2).reshape(batch, length, hidden))


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
    ) -> torch.Tensor:
        attended = self.attention(self.attention_norm(hidden_states), key_mask, rotary_cos, rotary_sin)
        hidden_states = hidden_states + self.dropout(attended)
        update = self.mlp_out(self.act(self.mlp_in(self.mlp_norm(hidden_states))))
        return hidden_states + self.dropout(update)


class PerformerPreTrainedModel(PreTrainedModel):
    config_class = PerformerConfig
    base_model_prefix = "performer"
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["PerformerLayer"]

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

    # Loading the encoder alone from a checkpoint with a head is expected: don't report the head as unexpected.
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^lm_head\.", r"^profile_head\.", r"^classifier\."]

    def __init__(self, config: PerformerConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.add_pooling_layer = add_pooling_layer
        self.embeddings = PerformerEmbeddings(config)
        self.layers = nn.ModuleList(PerformerLayer(config, index) for index in range(config.num_hidden_layers))
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.register_buffer("feature_redraw_step", torch.zeros((), dtype=torch.long), persistent=True)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def _advance_feature_schedule(self) -> None:
        """Count a training forward pass; on every ``feature_redraw_interval``-th, redraw all projections.

        Draw ``k`` happens at step ``k * interval``, so the projection in use is always draw
        ``step // interval`` of its layer: reproducible from the seed and the saved step counter alone.
        """
        interval = self.config.feature_redraw_interval
        if not self.training or interval == 0 or self.config.attention != "favor":
            return
        with torch.no_grad():
            self.feature_redraw_step += 1
        step = int(self.feature_redraw_step)
        if step % interval == 0:
            for layer in self.layers:
                layer.attention.redraw_projection(step // interval)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        attention_mask = checked_attention_mask(
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
        # Without padding the attention kernels skip masking altogether.
        key_mask = None if bool(attention_mask.all()) else attention_mask
        all_hidden = [hidden] if output_hidden_states else None
        for layer in self.layers:
            hidden = layer(hidden, key_mask, rotary_cos, rotary_sin)
            if all_hidden is not None:
                all_hidden.append(hidden)
        last_hidden_state = self.final_layer_norm(hidden)
        pooled = pool(last_hidden_state, input_ids, attention_mask, self.config) if self.add_pooling_layer else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )
        return output if return_dict is not False else output.to_tuple()


class PerformerTaskModel(PerformerPreTrainedModel):
    """A ``PerformerModel`` backbone (``self.performer``) under the head of a task mixin (``task_models.py``)."""

    def __init__(self, config: PerformerConfig) -> None:
        super().__init__(config)
        self.performer = PerformerModel(config, add_pooling_layer=self.uses_pooled_output)
        self._build_heads(config)
        self.post_init()


class PerformerForMaskedLM(MaskedLMMixin, PerformerTaskModel):
    """PerformerModel with an untied linear decoder to the vocabulary (as the Conv family)."""


class PerformerForPreTraining(PreTrainingMixin, PerformerTaskModel):
    __doc__ = PreTrainingMixin.__doc__


class PerformerForSequenceClassification(SequenceClassificationMixin, PerformerTaskModel):
    __doc__ = SequenceClassificationMixin.__doc__


class PerformerForTokenClassification(TokenClassificationMixin, PerformerTaskModel):
    __doc__ = TokenClassificationMixin.__doc__


#: The Performer registration table: Auto class name -> model class (``auto_classes.AUTO_MODEL_SUFFIXES``).
PERFORMER_MODEL_CLASSES = register_family(
    PerformerConfig,
    PerformerModel,
    PerformerForMaskedLM,
    PerformerForPreTraining,
    PerformerForSequenceClassification,
    PerformerForTokenClassification,
)
