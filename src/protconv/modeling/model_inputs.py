"""Checks on model inputs shared by every protconv model family.

A wrong shape or an out-of-vocabulary id would otherwise surface deep inside a convolution or an embedding
lookup as an opaque indexing error (or, on GPU, a device-side assert).

Checks that read tensor values (token-id range, rows without a residue) synchronise with the device and would
break a ``torch.compile`` graph, so they run in eager mode only (``eager_checks``); shape and dtype checks cost
nothing and run always.
"""

from __future__ import annotations

import torch


def eager_checks() -> bool:
    """Whether checks that read tensor values should run: not while ``torch.compile`` traces the forward.

    A compiled graph cannot raise on data without a graph break and a host synchronisation on every step, so
    compiled models trust their inputs (run a batch eagerly first to validate a data pipeline).
    """
    return not torch.compiler.is_compiling()


def checked_inputs(
    input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, vocab_size: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``input_ids``/``attention_mask``; return ``input_ids`` (present: every forward needs them) and
    the boolean mask (derived from padding when absent)."""
    if input_ids is None:
        raise ValueError("input_ids is required")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"empty batch: input_ids has shape {tuple(input_ids.shape)}")
    if input_ids.dtype not in (torch.long, torch.int):
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if eager_checks():
        _check_token_range(input_ids, vocab_size)
    if attention_mask is None:
        return input_ids, input_ids != pad_token_id
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match "
            f"input_ids shape {tuple(input_ids.shape)}"
        )
    return input_ids, attention_mask.bool()


def _check_token_range(input_ids: torch.Tensor, vocab_size: int) -> None:
    """Raise naming the first out-of-vocabulary id and where it is (one host synchronisation)."""
    low, high = torch.stack(torch.aminmax(input_ids)).tolist()
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        where = torch.nonzero(input_ids == bad)[0].tolist()
        raise ValueError(
            f"token id {bad} at (row, position) {tuple(where)} is outside the vocabulary [0, {vocab_size})"
        )


def check_unsupported_inputs(
    inputs_embeds: torch.Tensor | None, output_attentions: bool | None, attention_weights_reason: str | None
) -> None:
    """Refuse the standard transformers arguments a model accepts by name but cannot honour.

    Trainer, pipelines and peft's wrappers pass ``inputs_embeds=None`` and ``output_attentions=None`` on every
    call, so the names must be accepted; a value that asks for something the model cannot do must fail rather
    than be ignored. ``attention_weights_reason`` says why this model cannot return attention weights (``None``
    if it can).
    """
    if inputs_embeds is not None:
        raise ValueError(
            "inputs_embeds is not supported: protconv models need input_ids (for the padding mask, pooling and "
            "special tokens); pass input_ids"
        )
    if output_attentions and attention_weights_reason is not None:
        raise ValueError(f"output_attentions=True is not supported: {attention_weights_reason}")
