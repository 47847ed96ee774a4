"""Metrics of a pretraining run: named sums that add up across micro-batches and processes, and a JSONL log that
is always written (trackers such as TensorBoard or W&B are optional extras through accelerate).

The loss terms come from ``modeling.losses`` (the models' own loss functions, as sums and counts), so the loop
trains and reports exactly what the model's ``loss`` would be.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig

from ..modeling.configuration_base import MLM, PROFILE, objective_parts
from ..modeling.losses import objective_loss, profile_kl_sums, token_cross_entropy_sums
from ..modeling.vocabulary import IGNORE_INDEX

logger = logging.getLogger(__name__)


@dataclass
class ObjectiveSums:
    """Additive statistics of a logging window or a validation pass (plain floats, detached from the graph).

    Sums rather than means: a batch with no masked token (a filler batch, or a tiny protein) then contributes
    zero instead of NaN, and metrics are exact token averages over batches and processes.

    ``objective_loss_sum`` adds up each micro-batch's own training loss over the ``objective_batches`` that carry
    a target (a filler carries none): their mean is what a multi-task run optimises, where a batch without
    profile positions adds no profile term, whereas token averages of the two terms would weigh the profile
    term by the positions of the batches that have one.
    """

    mlm_loss_sum: float = 0.0
    masked_tokens: float = 0.0
    masked_correct: float = 0.0
    profile_kl_sum: float = 0.0
    profile_positions: float = 0.0
    tokens: float = 0.0
    padded_tokens: float = 0.0
    batches: float = 0.0
    objective_loss_sum: float = 0.0
    objective_batches: float = 0.0

    def __iadd__(self, other: ObjectiveSums) -> ObjectiveSums:
        for name in self.field_names():
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def drop_loss_terms(self) -> None:
        """Keep the token counts of a micro-batch whose loss was non-finite, but none of its loss terms."""
        self.mlm_loss_sum = self.masked_tokens = self.masked_correct = 0.0
        self.profile_kl_sum = self.profile_positions = 0.0
        self.objective_loss_sum = self.objective_batches = 0.0

    def to_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """One float64 vector, for a single all-reduce across processes."""
        return torch.tensor(astuple(self), dtype=torch.float64, device=device)

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> ObjectiveSums:
        return cls(*values.tolist())

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def objective_sums(
    config: PretrainedConfig,
    output: Any,
    labels: torch.Tensor | None,
    profile_targets: torch.Tensor | None,
    attention_mask: torch.Tensor,
) -> tuple[torch.Tensor, ObjectiveSums]:
    """The micro-batch's training loss (``objective_loss`` of the token-averaged terms of the model's objective)
    and its ``ObjectiveSums`` for logging and exact averages across batches."""
    sums = ObjectiveSums(batches=1.0)
    mlm_loss = profile_loss = None
    if labels is not None and getattr(output, "logits", None) is not None:
        mlm = token_cross_entropy_sums(output.logits, labels)
        mlm_loss = mlm.mean()
        correct = ((output.logits.argmax(-1) == labels) & (labels != IGNORE_INDEX)).sum()
        sums.mlm_loss_sum, sums.masked_tokens, sums.masked_correct = _floats(mlm.total, mlm.count, correct)
    if profile_targets is not None and getattr(output, "profile_logits", None) is not None:
        kl = profile_kl_sums(output.profile_logits, profile_targets)
        profile_loss = kl.mean()
        sums.profile_kl_sum, sums.profile_positions = _floats(kl.total, kl.count)
    loss = objective_loss(config, mlm_loss, profile_loss)  # None exactly when the batch has neither term
    if loss is None:
        raise ValueError(
            f"the batch carries no target for pretraining_objective={config.pretraining_objective!r} "
            f"(labels given: {labels is not None}, profile_targets given: {profile_targets is not None})"
        )
    if sums.masked_tokens + sums.profile_positions > 0:  # a filler batch (no target at all) is no objective term
        sums.objective_loss_sum, sums.objective_batches = float(loss.detach()), 1.0
    tokens = attention_mask.sum()
    sums.tokens, sums.padded_tokens = _floats(tokens, attention_mask.numel() - tokens)
    return loss, sums


def _floats(*values: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(value.detach()) for value in values)


def summary(sums: ObjectiveSums, config: PretrainedConfig) -> dict[str, float]:
    """Metrics of a window (or a validation pass).

    ``loss`` is the objective: the MLM loss for masked-LM pretraining (with its ``perplexity`` and masked
    ``accuracy``), the profile KL for profile-only (both token averages), and for multi-task runs the mean over
    micro-batches of each one's weighted loss, exactly what training optimises (train windows and validation
    alike); those also report the token-averaged ``mlm_loss`` and ``profile_kl`` separately.
    """
    parts = objective_parts(config.pretraining_objective)
    metrics: dict[str, float] = {}
    mlm = sums.mlm_loss_sum / max(sums.masked_tokens, 1.0)
    if MLM in parts:
        metrics.update(perplexity=math.exp(min(mlm, 50.0)), accuracy=sums.masked_correct / max(sums.masked_tokens, 1.0))
    if PROFILE in parts and sums.profile_positions > 0:
        metrics["profile_kl"] = sums.profile_kl_sum / sums.profile_positions
    if len(parts) > 1:  # mlm+profile
        metrics["mlm_loss"] = mlm
        metrics["loss"] = sums.objective_loss_sum / max(sums.objective_batches, 1.0)
    else:
        metrics["loss"] = mlm if MLM in parts else metrics.get("profile_kl", 0.0)
    metrics["padding_fraction"] = sums.padded_tokens / max(sums.padded_tokens + sums.tokens, 1.0)
    metrics["tokens"] = sums.tokens
    return metrics


class MetricsLog:
    """Append-only JSONL (one object per event, each with ``step`` and ``split``), written by the main process."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run re-does those steps and must not log them twice. The file is
        replaced atomically, so a kill here leaves the old log or the new one, never a mix."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [record for record in self.read() if record.get("step", 0) <= step]
        staging = self.path.with_name(f".{self.path.name}.tmp")
        staging.write_text("".join(json.dumps(record) + "\n" for record in kept), encoding="utf-8")
        os.replace(staging, self.path)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every complete record. A line that is not a JSON object (the torn last line of a killed run) is left
        out with a warning naming it, rather than making the run unresumable."""
        if not self.path.is_file():
            return []
        records = []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                logger.warning("%s:%d: not a complete metrics record (torn by a kill?); left out", self.path, number)
        return records
