"""Every loss of protconv, written once.

The token-level losses come as ``LossSums`` (a sum over positions and their count): a model reports the mean
``total / count``, and the pretraining loop adds totals and counts over micro-batches and processes for exact
token-weighted averages. Both therefore compute the same numbers from the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers import PretrainedConfig

from .configuration_base import label_count, objective_parts, profile_task_alpha
from .vocabulary import IGNORE_INDEX


@dataclass
class LossSums:
    """A token-level loss before averaging: ``total`` over ``count`` positions (both 0-dim tensors)."""

    total: torch.Tensor
    count: torch.Tensor

    def mean(self) -> torch.Tensor:
        """``total / count``; a batch without a position gives 0 (still connected to the graph), not NaN."""
        return self.total / self.count.clamp(min=1)


def token_cross_entropy_sums(logits: torch.Tensor, labels: torch.Tensor) -> LossSums:
    """Cross-entropy over positions whose label is not ``IGNORE_INDEX`` (padding, special tokens, unmasked
    residues), in float32 whatever the logits' dtype. Used by the masked-LM and token-classification heads."""
    flat_labels = labels.reshape(-1)
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), flat_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return LossSums(total, (flat_labels != IGNORE_INDEX).sum())


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled positions (see ``token_cross_entropy_sums``)."""
    return token_cross_entropy_sums(logits, labels).mean()


def profile_kl_sums(logits: torch.Tensor, targets: torch.Tensor) -> LossSums:
    """KL(target || softmax(logits)) = sum_c t_c (log t_c - log_softmax(logits)_c), summed over valid positions.

    ``targets`` has the shape of ``logits`` (batch, length, classes) and holds a distribution per position. A
    position is valid iff its target row sums to more than 0: an all-zero row means "no target" (padding,
    special tokens, insert residues masked out), so collators mark ignored positions with zeros rather than a
    separate mask. ``0 * log 0`` is taken as 0, so one-hot and sparse targets are fine. Rows are neither
    renormalised nor checked to sum to 1 (that would cost a host synchronisation per step).

    Computed in float32 whatever the logits' dtype (half-precision log-probabilities lose the small target
    entries). A batch without a valid position gives a total of exactly 0 that is still connected to ``logits``
    (zero gradients, but a ``grad_fn``), so that ``backward()`` works and DDP/accelerate, which expect every
    parameter of the head to take part in every step, do not fail or hang.
    """
    if targets.shape != logits.shape:
        raise ValueError(
            f"profile_targets shape {tuple(targets.shape)} does not match profile logits shape "
            f"{tuple(logits.shape)}: expected (batch, length, num_profile_classes), aligned with input_ids"
        )
    log_probs = F.log_softmax(logits.float(), dim=-1)
    targets = targets.float()
    per_position = (torch.special.xlogy(targets, targets) - targets * log_probs).sum(dim=-1)
    valid = targets.sum(dim=-1) > 0
    # No boolean indexing: no host synchronisation, and an empty selection still yields a graph-connected zero.
    total = torch.where(valid, per_position, torch.zeros_like(per_position)).sum()
    return LossSums(total, valid.sum())


def profile_kl_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over valid positions of KL(target || softmax(logits)) (see ``profile_kl_sums``)."""
    return profile_kl_sums(logits, targets).mean()


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """Regression (MSE) when ``num_labels == 1``; cross-entropy for integer labels; BCE for multi-hot labels.

    The inferred ``problem_type`` is stored in the config, as transformers models do, so it is saved.
    """
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, label_count(config)), labels.view(-1))
    if config.problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ValueError(f"unsupported problem_type {config.problem_type!r}")


def multitask_loss(
    config: PretrainedConfig, mlm_loss: torch.Tensor | None, profile_loss: torch.Tensor | None
) -> torch.Tensor | None:
    """``(1 - alpha) * mlm_loss + alpha * profile_loss_scale * profile_loss``, ``alpha = w / (w + 1)``; a missing
    term is left out (not renormalised), so a batch weighs the same whichever targets it carries.

    The pretraining models and the pretraining loop both call it with each micro-batch's own token means (as
    transformers' models do); accumulation and data parallelism then average micro-batches equally, so a
    micro-batch with few profile positions weighs as much as a full one.
    """
    alpha = profile_task_alpha(config.profile_task_weight)
    terms = []
    if mlm_loss is not None:
        terms.append((1.0 - alpha) * mlm_loss)
    if profile_loss is not None:
        terms.append(alpha * config.profile_loss_scale * profile_loss)
    return torch.stack(terms).sum() if terms else None


def objective_loss(
    config: PretrainedConfig, mlm_loss: torch.Tensor | None, profile_loss: torch.Tensor | None
) -> torch.Tensor | None:
    """The loss of ``config.pretraining_objective``: ``multitask_loss`` for ``"mlm+profile"``, otherwise the one
    task's own (unweighted) loss."""
    if len(objective_parts(config.pretraining_objective)) > 1:
        return multitask_loss(config, mlm_loss, profile_loss)
    return mlm_loss if mlm_loss is not None else profile_loss
