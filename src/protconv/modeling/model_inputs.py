"""Checks on model inputs shared by every protconv model family.

A wrong shape or an out-of-vocabulary id would otherwise surface deep inside a convolution or an embedding
lookup as an opaque indexing error (or, on GPU, a device-side assert).
"""

from __future__ import annotations

import torch


def checked_attention_mask(
    input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, vocab_size: int, pad_token_id: int
) -> torch.Tensor:
    """Validate ``input_ids``/``attention_mask``; return the boolean mask (derived from padding when absent)."""
    if input_ids is None:
        raise ValueError("input_ids is required")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(f"empty batch: input_ids has shape {tuple(input_ids.shape)}")
    if input_ids.dtype not in (torch.long, torch.int):
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        where = torch.nonzero(input_ids == bad)[0].tolist()
        raise ValueError(
            f"token id {bad} at (row, position) {tuple(where)} is outside the vocabulary [0, {vocab_size})"
        )
    if attention_mask is None:
        return input_ids != pad_token_id
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match "
            f"input_ids shape {tuple(input_ids.shape)}"
        )
    return attention_mask.bool()
