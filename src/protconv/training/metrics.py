"""Metrics of a pretraining run: masked-LM and profile-KL sums that add up across batches and processes, and a
JSONL log that is always written (trackers such as TensorBoard or W&B are optional extras through accelerate)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig

from ..data.masking import IGNORE_INDEX
from ..modeling.heads import multitask_loss, objective_loss, profile_kl_loss
from ..modeling.objectives import objective_parts

#: Order of the entries of a window's sums vector (see ``objective_sums``).
SUM_FIELDS = (
    "loss_sum", "masked", "correct", "profile_kl_sum", "profile_positions", "tokens", "padded_tokens", "batches"
)  # fmt: skip


def masked_lm_sums(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed cross-entropy, number of masked tokens and number predicted correctly.

    Sums rather than a mean: a batch with no masked token (a filler batch, or a tiny protein) then contributes
    zero instead of NaN, and validation metrics are exact token averages over batches and processes.
    """
    selected = labels != IGNORE_INDEX
    chosen = logits[selected].float()
    targets = labels[selected]
    loss_sum = F.cross_entropy(chosen, targets, reduction="sum")
    correct = (chosen.argmax(-1) == targets).sum()
    return loss_sum, selected.sum(), correct


def profile_kl_sums(profile_logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed KL(target || prediction) over positions with a target, and their number (the model's own loss,
    ``profile_kl_loss``, is the mean of exactly these terms)."""
    positions = (targets.sum(dim=-1) > 0).sum()
    return profile_kl_loss(profile_logits, targets) * positions, positions


def objective_sums(
    config: PretrainedConfig,
    output: Any,
    labels: torch.Tensor | None,
    profile_targets: torch.Tensor | None,
    attention_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The micro-batch's training loss (``objective_loss`` of the token-averaged terms of the model's objective)
    and its ``SUM_FIELDS`` vector (float64, detached) for logging and exact averages across batches."""
    device = attention_mask.device
    zero = torch.zeros((), device=device)
    mlm_sum, masked, correct, kl_sum, positions = zero, zero, zero, zero, zero
    mlm_loss = profile_loss = None
    if labels is not None and getattr(output, "logits", None) is not None:
        mlm_sum, masked, correct = masked_lm_sums(output.logits, labels)
        mlm_loss = mlm_sum / masked.clamp(min=1)
    if profile_targets is not None and getattr(output, "profile_logits", None) is not None:
        kl_sum, positions = profile_kl_sums(output.profile_logits, profile_targets)
        profile_loss = kl_sum / positions.clamp(min=1)
    if mlm_loss is None and profile_loss is None:
        raise ValueError(
            f"the batch carries no target for pretraining_objective={config.pretraining_objective!r} "
            f"(labels given: {labels is not None}, profile_targets given: {profile_targets is not None})"
        )
    loss = objective_loss(config, mlm_loss, profile_loss)
    tokens = attention_mask.sum()
    values = [mlm_sum, masked, correct, kl_sum, positions, tokens, attention_mask.numel() - tokens, 1]
    sums = torch.tensor([float(v.detach()) if torch.is_tensor(v) else float(v) for v in values], dtype=torch.float64)
    return loss, sums


def _parts(config: PretrainedConfig | None, values: dict[str, float]) -> frozenset[str]:
    """The objective's tasks; without a config, whatever the sums hold (MLM when nothing else)."""
    if config is not None:
        return objective_parts(config.pretraining_objective)
    return frozenset({"profile"} if values["profile_positions"] > 0 else {"mlm"})


def summary(sums: torch.Tensor, config: PretrainedConfig | None = None) -> dict[str, float]:
    """Metrics of a window (or a validation pass) from its ``SUM_FIELDS`` vector.

    ``loss`` is the objective: the MLM loss for masked-LM pretraining (with its ``perplexity`` and masked
    ``accuracy``), the profile KL for profile-only, and the weighted sum for multi-task runs, which also report
    ``mlm_loss`` and ``profile_kl`` separately.
    """
    values = dict(zip(SUM_FIELDS, sums.tolist(), strict=True))
    parts = _parts(config, values)
    metrics: dict[str, float] = {}
    mlm, profile = None, 0.0
    if "mlm" in parts:
        mlm = values["loss_sum"] / max(values["masked"], 1.0)
        metrics.update(perplexity=math.exp(min(mlm, 50.0)), accuracy=values["correct"] / max(values["masked"], 1.0))
    if "profile" in parts and values["profile_positions"] > 0:
        profile = metrics["profile_kl"] = values["profile_kl_sum"] / values["profile_positions"]
    if len(parts) > 1:
        metrics["mlm_loss"] = mlm
        metrics["loss"] = float(multitask_loss(config, torch.tensor(mlm), torch.tensor(profile)))
    else:
        metrics["loss"] = mlm if mlm is not None else profile
    metrics["padding_fraction"] = values["padded_tokens"] / max(values["padded_tokens"] + values["tokens"], 1.0)
    metrics["tokens"] = values["tokens"]
    return metrics


class MetricsLog:
    """Append-only JSONL (one object per event, each with ``step`` and ``split``), written by the main process."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run re-does those steps and must not log them twice."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [line for line in self.read() if line["step"] <= step]
        self.path.write_text("".join(json.dumps(record) + "\n" for record in kept), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
