"""The dilated-CNN protein language model of CARP ("Convolutions are competitive with transformers for protein
sequence pretraining", Yang, Fusi, Lu 2022), as transformers models.

The network is CARP's ``ByteNetLM`` operation for operation, so that converted CARP checkpoints reproduce the
reference to float precision. Two upstream defects are not reproduced: dropout is active in training only, and
the embedding-layer representation is ``hidden_states[0]``.

Reduced precision on the CPU (bf16/fp16 weights, or CPU autocast to either) takes two fast paths; fp32, and any
GPU, never does, so their outputs are those of the plain operations, bit for bit:

- the dilated convolution runs channels-last, without the two transposing copies of ``Conv1d``, and drops the
  taps that only ever see padding (``_channels_last_conv``);
- without gradients (inference), a padded batch is packed: the position-wise work of every block (LayerNorms,
  activations, both projections, the residual) runs on the real positions only, and the convolution reads them
  scattered back into a zero-padded grid (``ConvModel._packed_positions``). Real positions get the values they
  get unpacked (the matmuls see fewer rows, the same sums per row); padded positions, whose outputs mean nothing,
  keep the embedding output through the blocks.

``benchmarks/conv_cpu_dtype.py`` measures both against the reference.

Module names: the backbone is ``conv`` (as ``performer`` and ESM's ``esm``), each block's dilated convolution
``dilated_conv``, so that a peft target names one kind of module. Checkpoints written before the rename (and
converted CARP folders) call the block convolution ``conv``. They still load: ``from_pretrained`` through the
conversion mapping registered below (with or without protconv installed, as it ships with the code), a plain
``load_state_dict`` (Trainer's resume, say) through ``ConvBlock``'s load hook. Saving writes the current names
(``ConvPreTrainedModel.save_pretrained``).

``torch.compile(model, fullgraph=True)`` traces every forward without a graph break: value checks run in eager
mode only, and the packed fast path (data-dependent shapes) is left to eager mode.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .auto_classes import register_family
from .configuration_conv import ConvConfig
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

_REDUCED_PRECISION = (torch.bfloat16, torch.float16)
#: Why ``output_attentions=True`` fails.
CONV_HAS_NO_ATTENTION = "Conv models have no attention (dilated convolutions mix the positions)"

# The block convolution was ``layers.N.conv`` before it became ``layers.N.dilated_conv`` (see the module notes).
register_checkpoint_conversion_mapping(
    ConvConfig.model_type, [WeightRenaming(r"\.conv\.", ".dilated_conv.")], overwrite=True
)


def _reduced_precision_cpu(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is computed on in bf16/fp16 on the CPU (its dtype, or CPU autocast to either): the
    condition of the fast paths."""
    if tensor.device.type != "cpu":
        return False
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") in _REDUCED_PRECISION:
        return True
    return tensor.dtype in _REDUCED_PRECISION


class DilatedConv1d(nn.Conv1d):
    """A ``Conv1d`` whose output has its input's length ("same" zero padding), so that its dilation follows from
    its padding and kernel size.

    Whoever copies the layer from ``(in, out, kernel_size, stride, padding)`` without the dilation, as peft does
    to build a LoRA factor of the same type, then gets the same dilation (an ``nn.Conv1d`` would get dilation 1,
    and the factor's output a different length). ``dilation`` alone gives the padding; both must agree.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] | None = None,
        dilation: int | tuple[int] | None = None,
        **kwargs: Any,
    ) -> None:
        kernel = _single(kernel_size)
        dilation, padding = _same_padding(kernel, _single_or_none(padding), _single_or_none(dilation))
        super().__init__(in_channels, out_channels, kernel, stride, padding, dilation, **kwargs)


def _single(value: int | tuple[int] | list[int]) -> int:
    return value if isinstance(value, int) else int(value[0])


def _single_or_none(value: int | tuple[int] | list[int] | None) -> int | None:
    return None if value is None else _single(value)


def _same_padding(kernel: int, padding: int | None, dilation: int | None) -> tuple[int, int]:
    """``(dilation, padding)`` of a "same" convolution from whichever of the two is given (dilation 1 if none)."""
    if kernel % 2 != 1:
        raise ValueError(f"a 'same' convolution needs an odd kernel size, got {kernel}")
    half = (kernel - 1) // 2
    if dilation is None:
        dilation = 1 if padding is None or half == 0 else padding // half
    expected = dilation * half
    if dilation < 1 or (padding is not None and padding != expected):
        raise ValueError(f"kernel {kernel}, padding {padding}, dilation {dilation} is not a 'same' convolution")
    return dilation, expected


def _rename_old_conv_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """``load_state_dict`` hook of ``ConvBlock``: read the convolution's weights under its old name ``conv``."""
    for name in ("weight", "bias"):
        old = f"{prefix}conv.{name}"
        if old in state_dict:
            state_dict[f"{prefix}dilated_conv.{name}"] = state_dict.pop(old)


def _is_plain_conv(conv: nn.Module) -> bool:
    """``conv`` is the ``DilatedConv1d`` ``ConvBlock`` builds, unwrapped: no subclass or adapter (a LoRA wrapper
    adds its own terms), no hook and no replaced ``forward`` (an offloading hook, say) that calling its weight
    directly would bypass."""
    return (
        type(conv) is DilatedConv1d
        and "forward" not in vars(conv)
        and not conv._forward_hooks
        and not conv._forward_pre_hooks
        and conv.groups == 1
        and conv.stride == (1,)
        and conv.padding_mode == "zeros"
        and conv.padding == (conv.dilation[0] * (conv.kernel_size[0] - 1) // 2,)
    )


def _channels_last_conv(conv: nn.Conv1d, inner: torch.Tensor) -> torch.Tensor:
    """``conv`` on ``inner`` of shape (batch, length, channels), kept in that layout.

    As a 2-D convolution over (batch, channels, 1, length) channels-last: oneDNN reads and writes the
    (batch, length, channels) memory as it is, where ``Conv1d`` (a 3-D input is channels-first) needs a
    transposing copy on each side. Taps farther from the centre than ``length - 1`` positions read only zero
    padding for every output: they are left out (at dilation 128, proteins up to 256 long need 3 of the 5 taps).
    Same arithmetic otherwise; the sums may be ordered differently, which is why fp32 never comes here.
    """
    dilation = conv.dilation[0]
    half = (conv.kernel_size[0] - 1) // 2
    reach = min(half, (inner.shape[1] - 1) // dilation)
    weight = conv.weight[:, :, half - reach : half + reach + 1].unsqueeze(2)
    channels_last = inner.unsqueeze(1).permute(0, 3, 1, 2)
    output = F.conv2d(channels_last, weight, conv.bias, padding=(0, reach * dilation), dilation=(1, dilation))
    return output.squeeze(2).transpose(1, 2)


class ConvEmbeddings(nn.Module):
    """Token embedding (small, CARP uses 8 dims) projected up to the model width per position.

    As in CARP, the ``<mask>`` token's embedding is fixed at zero (``padding_idx``), so a masked residue carries
    no input signal.
    """

    #: An ``nn.Embedding``, or whatever module ``set_input_embeddings`` was given (transformers allows any).
    word_embeddings: nn.Module

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
        self.dilated_conv = DilatedConv1d(inner, inner, config.kernel_size, dilation=dilation)
        self.norm_out = nn.LayerNorm(inner, eps=config.layer_norm_eps)
        self.proj_out = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_load_state_dict_pre_hook(_rename_old_conv_keys)

    def forward(
        self, hidden_states: torch.Tensor, conv_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``hidden_states`` (batch, length, hidden), ``conv_mask`` (batch, length, 1).

        Packed (``positions`` given, see ``ConvModel._packed_positions``): ``hidden_states`` (n, hidden) holds the
        real positions only, ``positions`` their flat indices into the (batch, length) grid of ``conv_mask``.
        """
        inner = self.act(self.norm_conv_in(self.proj_in(self.act(self.norm_in(hidden_states)))))
        if positions is None:
            inner = self.convolve(inner * conv_mask)
        else:  # scattered into zeros: padding reads as zero, as the mask makes it
            grid = inner.new_zeros(*conv_mask.shape[:2], inner.shape[-1])
            grid.view(-1, inner.shape[-1]).index_copy_(0, positions, inner)
            inner = self.convolve(grid).flatten(0, 1).index_select(0, positions)
        update = self.proj_out(self.act(self.norm_out(inner)))
        return self.dropout(hidden_states + update)

    def convolve(self, inner: torch.Tensor) -> torch.Tensor:
        """The dilated convolution of (batch, length, intermediate) input, already masked."""
        if _reduced_precision_cpu(inner) and _is_plain_conv(self.dilated_conv):
            return _channels_last_conv(self.dilated_conv, inner)
        return self.dilated_conv(inner.transpose(1, 2)).transpose(1, 2)


class ConvPreTrainedModel(ProteinHubMixin):
    config_class = ConvConfig
    base_model_prefix = "conv"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ConvBlock"]
    #: Default LoRA targets (``protconv.lora``): every matrix of the blocks, the dilated convolution included
    #: (the only layer that mixes positions).
    lora_target_modules: tuple[str, ...] = ("proj_in", "dilated_conv", "proj_out")
    # Losses are per-batch means: Trainer must average gradient-accumulation steps itself, not pass
    # num_items_in_batch (which it would, seeing a loss keyword, and then not divide).
    accepts_loss_kwargs = False

    def save_pretrained(
        self, save_directory: Any, *args: Any, save_original_format: bool = False, **kwargs: Any
    ) -> None:
        """``save_pretrained`` writing the current key names (``dilated_conv``) by default.

        transformers' default (``save_original_format=True``) would write the names the conversion mapping reads
        (``conv``) back, and Trainer resumes a checkpoint with a plain ``load_state_dict`` of that file.
        """
        kwargs["save_original_format"] = save_original_format  # a keyword, whatever ``args`` holds
        return super().save_pretrained(save_directory, *args, **kwargs)

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

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """``output_attentions`` and ``inputs_embeds`` are accepted by name only (false / ``None``): callers such
        as peft's wrappers always pass them."""
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        check_unsupported_inputs(inputs_embeds, output_attentions, CONV_HAS_NO_ATTENTION)
        input_ids, attention_mask = checked_inputs(
            input_ids, attention_mask, self.config.vocab_size, self.config.pad_token_id
        )
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        hidden = self.embeddings(input_ids)
        conv_mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        all_hidden = [hidden] if output_hidden_states else None
        positions = self._packed_positions(hidden, attention_mask)
        if positions is None:
            for layer in self.layers:
                hidden = layer(hidden, conv_mask)
                if all_hidden is not None:
                    all_hidden.append(hidden)
        else:
            grid = hidden.flatten(0, 1)  # padded positions keep the embedding output
            packed = grid.index_select(0, positions)
            for layer in self.layers:
                packed = layer(packed, conv_mask, positions)
                if all_hidden is not None:
                    all_hidden.append(grid.to(packed.dtype).index_copy(0, positions, packed).view(hidden.shape))
            hidden = grid.to(packed.dtype).index_copy(0, positions, packed).view(hidden.shape)
        last_hidden_state = self.final_layer_norm(hidden)
        pooled = pool(last_hidden_state, input_ids, attention_mask, self.config) if self.add_pooling_layer else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
        )
        return output if return_dict is not False else output.to_tuple()

    def _packed_positions(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Flat indices of the real positions when the blocks should run packed, else ``None``.

        Packed: a padded batch in reduced precision on the CPU, without gradients. Every block's work but the
        convolution is per position, so it runs on the real positions alone (on a batch of proteins of mixed
        lengths, padding is often a third of the grid or more). Training (gradients enabled), fp32 and the GPU
        run unpacked, and so do blocks with forward hooks (which expect (batch, length, hidden) tensors), and a
        compiled model (the packed shapes depend on the mask's values).
        """
        if torch.is_grad_enabled() or not _reduced_precision_cpu(hidden) or torch.compiler.is_compiling():
            return None
        if any(layer._forward_hooks or layer._forward_pre_hooks for layer in self.layers):
            return None
        if bool(attention_mask.all()) or not bool(attention_mask.any()):
            return None
        return attention_mask.flatten().nonzero().squeeze(-1)


class ConvTaskModel(TaskMixin, ConvPreTrainedModel):
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
