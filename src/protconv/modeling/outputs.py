"""Output dataclass of protconv's own task (pretraining); the others are transformers' standard outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class ProteinPreTrainingOutput(ModelOutput):
    """Output of the ``*ForPreTraining`` models.

    Args:
        loss: The training objective: the weighted multi-task sum for ``"mlm+profile"`` (see
            ``losses.multitask_loss``), otherwise the single task's loss. ``None`` without targets.
        mlm_loss: Unweighted masked-LM cross-entropy over labelled positions, when ``labels`` were given.
        profile_loss: Unweighted KL(target || prediction) over valid positions, when ``profile_targets`` were
            given.
        logits: MLM logits ``(batch, length, vocab_size)``; ``None`` for the ``"profile"`` objective.
        profile_logits: Profile logits ``(batch, length, num_profile_classes)``; ``None`` for ``"mlm"``.
        hidden_states: Embedding output and every layer's output, with ``output_hidden_states=True``.
        attentions: Every layer's attention probabilities ``(batch, heads, length, length)``, with
            ``output_attentions=True`` (exact-softmax Performer models only).
    """

    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    profile_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    profile_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
