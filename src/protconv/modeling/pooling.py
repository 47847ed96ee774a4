"""One vector per protein from a backbone's per-position states, shared by every family and by inference."""

from __future__ import annotations

import torch
from transformers import PretrainedConfig

from .model_inputs import eager_checks


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

    A row without a residue (or without ``<cls>``) is an error rather than a NaN embedding, in eager mode; a
    compiled model skips the check (``model_inputs.eager_checks``) and gives such a row NaN (mean) or the state
    of whatever token comes first (cls).
    """
    if config.pooling == "cls":
        if eager_checks():
            _check_rows(input_ids[:, 0] != config.cls_token_id, "pooling='cls' needs <cls> at position 0;", "lack it")
        return hidden_states[:, 0]
    mask = residue_mask(input_ids, attention_mask, config)
    counts = mask.sum(dim=1, keepdim=True)
    if eager_checks():
        _check_rows(counts.squeeze(1) == 0, "mean pooling:", "contain no residue (only padding/special tokens)")
    weights = mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * weights).sum(dim=1) / counts.to(hidden_states.dtype)


def _check_rows(bad: torch.Tensor, what: str, problem: str) -> None:
    """Raise ``"{what} batch rows [...] {problem}"`` if any row of the boolean ``bad`` is set."""
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()
        raise ValueError(f"{what} batch rows {rows} {problem}")
