"""The dilated-CNN protein language model of CARP ("Convolutions are competitive with transformers for protein
sequence pretraining", Yang, Fusi, Lu 2022), as transformers models.

The network is CARP's ``ByteNetLM`` operation for operation, so that converted CARP checkpoints reproduce the
reference to float precision. Two upstream defects are not reproduced: dropout is active in training only, and
the embedding-layer representation is ``hidden_states[0]``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .auto_classes import register_family
from .configuration_conv import ConvConfig
from .model_inputs import checked_attention_mask
from .pooling import pool
from .task_models import MaskedLMMixin, PreTrainingMixin, SequenceClassificationMixin, TokenClassificationMixin


class ConvEmbeddings(nn.Module):
    """Token embedding (small, CARP uses 8 dims) projected up to the model width per position.

    As in CARP, the ``<mask>`` token's embedding is fixed at zero (``padding_idx``), so a masked residue carries
    no input signal.
    """

    def __init__(self, config: ConvConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.mask_token_id)
        self.up_projection = nn.Linear(config.embedding_size, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.up_projection(self.word_embeddings(input_ids))


class ConvBlock(GradientCheckpointingLayer):
    """ByteNet residual block: ``x + W2(act(LN(conv(mask * act(LN(W1(act(LN(x)))))))))``.

    The convolution's input is multiplied by the padding mask, so padded positions feed zeros to their
    neighbours exactly like the convolution's own zero padding: a sequence gives the same outputs alone or
    inside a padded batch.
    """

    def __init__(self, config: ConvConfig, dilation: int) -> None:
        super().__init__()
        hidden, inner = config.hidden_size, config.intermediate_size
        self.act = ACT2FN[config.hidden_act]
        self.norm_in = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.proj_in = nn.Linear(hidden, inner)
        self.norm_conv_in = nn.LayerNorm(inner, eps=config.layer_norm_eps)
        self.conv = nn.Conv1d(
            inner, inner, config.kernel_size, dilation=dilation, padding=dilation * (config.kernel_size - 1) // 2
        )
        self.norm_out = nn.LayerNorm(inner, eps=config.layer_norm_eps)
        self.proj_out = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, conv_mask: torch.Tensor) -> torch.Tensor:
        inner = self.act(self.norm_conv_in(self.proj_in(self.act(self.norm_in(hidden_states)))))
        inner = self.conv((inner * conv_mask).transpose(1, 2)).transpose(1, 2)
        update = self.proj_out(self.act(self.norm_out(inner)))
        return self.dropout(hidden_states + update)


class ConvPreTrainedModel(PreTrainedModel):
    config_class = ConvConfig
    base_model_prefix = "conv"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ConvBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation, with which CARP was trained (not BERT's N(0, 0.02))."""
        from transformers import initialization as init

        if isinstance(module, (nn.Linear, nn.Conv1d)):
            fan_in = module.weight[0].numel()
            bound = fan_in**-0.5
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class ConvModel(ConvPreTrainedModel):
    """Embeddings, dilated residual blocks and the final LayerNorm.

    ``hidden_states`` (with ``output_hidden_states=True``) are the embedding output followed by every block's
    output: exactly CARP's ``representations[0..n_layers]``. ``last_hidden_state`` is the final LayerNorm of the
    last block's output, i.e. what the language-model decoder reads. ``pooler_output`` is the pooled protein
    embedding (``config.pooling``; ``None`` when built with ``add_pooling_layer=False``, as the task models whose
    heads read every position are).
    """

    # Loading the encoder alone from a checkpoint with a head is expected: don't report the head as unexpected.
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\.", r"^profile_head\.", r"^classifier\."]

    def __init__(self, config: ConvConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.add_pooling_layer = add_pooling_layer
        self.embeddings = ConvEmbeddings(config)
        self.layers = nn.ModuleList(ConvBlock(config, dilation) for dilation in config.dilations)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

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
        hidden = self.embeddings(input_ids)
        conv_mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        all_hidden = [hidden] if output_hidden_states else None
        for layer in self.layers:
            hidden = layer(hidden, conv_mask)
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


class ConvTaskModel(ConvPreTrainedModel):
    """A ``ConvModel`` backbone (``self.conv``) under the head of a task mixin (``task_models.py``)."""

    def __init__(self, config: ConvConfig) -> None:
        super().__init__(config)
        self.conv = ConvModel(config, add_pooling_layer=self.uses_pooled_output)
        self._build_heads(config)
        self.post_init()


class ConvForMaskedLM(MaskedLMMixin, ConvTaskModel):
    """ConvModel with an untied linear decoder to the vocabulary (CARP's)."""


class ConvForPreTraining(PreTrainingMixin, ConvTaskModel):
    __doc__ = PreTrainingMixin.__doc__


class ConvForSequenceClassification(SequenceClassificationMixin, ConvTaskModel):
    __doc__ = SequenceClassificationMixin.__doc__


class ConvForTokenClassification(TokenClassificationMixin, ConvTaskModel):
    __doc__ = TokenClassificationMixin.__doc__


#: The Conv registration table: Auto class name -> model class (``auto_classes.AUTO_MODEL_SUFFIXES``).
CONV_MODEL_CLASSES = register_family(
    ConvConfig,
    ConvModel,
    ConvForMaskedLM,
    ConvForPreTraining,
    ConvForSequenceClassification,
    ConvForTokenClassification,
)
