"""The head modules every family's task models put on top of its backbone (parameters and forward only; the
losses are in ``losses.py``, the task models that wire heads to backbones in ``task_models.py``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig

from .configuration_base import label_count


class SequenceClassificationHead(nn.Module):
    """Dropout -> dense -> tanh -> dropout -> projection on the pooled vector (the head of BERT/ESM)."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, label_count(config))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(hidden))


class TokenClassificationHead(nn.Module):
    """Dropout -> projection at every position (per-residue labels such as secondary structure)."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(config.hidden_size, label_count(config))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(hidden_states))


class ProfileHead(nn.Module):
    """Dense -> GELU -> LayerNorm -> projection to ``num_profile_classes`` logits at every position.

    The head of Sturmfels et al. (2020) for predicting each residue's alignment-column amino-acid distribution;
    the same shape as an MLM decoder's transform, so it reads the backbone's output like the LM head does.
    """

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.out_proj = nn.Linear(config.hidden_size, config.num_profile_classes)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.layer_norm(F.gelu(self.dense(hidden_states))))


def lm_head(config: PretrainedConfig) -> nn.Linear:
    """The masked-LM decoder: an untied linear map to the vocabulary, as CARP's (so conversions map 1:1)."""
    return nn.Linear(config.hidden_size, config.vocab_size)
