"""Metrics of a pretraining run: masked-LM sums that add up across batches and processes, and a JSONL log that is
always written (trackers such as TensorBoard or W&B are optional extras through accelerate)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.masking import IGNORE_INDEX

#: Order of the entries of a ``MaskedLMSums`` vector.
SUM_FIELDS = ("loss_sum", "masked", "correct", "tokens", "padded_tokens", "batches")


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


def summary(sums: torch.Tensor) -> dict[str, float]:
    """Loss, perplexity, masked accuracy and padding share from a vector of ``SUM_FIELDS``."""
    values = dict(zip(SUM_FIELDS, sums.tolist(), strict=True))
    masked = max(values["masked"], 1.0)
    loss = values["loss_sum"] / masked
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "accuracy": values["correct"] / masked,
        "padding_fraction": values["padded_tokens"] / max(values["padded_tokens"] + values["tokens"], 1.0),
        "tokens": values["tokens"],
    }


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
