"""One vector per protein from a backbone's per-position states, shared by every family and by inference."""

from __future__ import annotations

import torch
from transformers import PretrainedConfig


def residue_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """True at real residues: attended positions that are not ``<pad>``, ``<cls>`` or ``<eos>``.

    Pooling over this mask makes a protein's embedding independent of batch padding and of whether the
    tokenizer framed it with special tokens.
    """
    special = torch.tensor([config.pad_token_id, config.cls_token_id, config.eos_token_id], device=input_ids.device)
    return attention_mask.bool() & ~torch.isin(input_ids, special)


def pool(
    hidden_states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, config: PretrainedConfig
) -> torch.Tensor:
    """Mean over real residues (``config.pooling == "mean"``) or the ``<cls>`` state (``"cls"``).

    A row without a residue (or without ``<cls>``) is an error rather than a NaN embedding.
    """
    if config.pooling == "cls":
        has_cls = input_ids[:, 0] == config.cls_token_id
        if not bool(has_cls.all()):
            rows = torch.nonzero(~has_cls).flatten().tolist()
            raise ValueError(f"pooling='cls' needs <cls> at position 0; batch rows {rows} lack it")
        return hidden_states[:, 0]
    mask = residue_mask(input_ids, attention_mask, config)
    counts = mask.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        rows = torch.nonzero(counts.squeeze(1) == 0).flatten().tolist()
        raise ValueError(f"mean pooling: batch rows {rows} contain no residue (only padding/special tokens)")
    weights = mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * weights).sum(dim=1) / counts.to(hidden_states.dtype)
