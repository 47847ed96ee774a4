"""Fine-tuning curves from ``transformers.Trainer``'s log history: the training loss and the evaluation metric by
step, the best checkpoint marked, and an optional baseline score as a horizontal line (what ``evaluate`` passes,
so a fine-tuned model is always seen beside the supervised baseline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .figures import pyplot, save_figure

#: Evaluation metrics tried in order when none is named (the first the history holds is drawn).
_METRICS = ("eval_spearman", "eval_accuracy", "eval_loss")


def plot_finetune_curves(
    log_history: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    metric: str | None = None,
    best_step: int | None = None,
    baseline: float | None = None,
    baseline_label: str = "baseline",
) -> Path | None:
    """Write the curves to ``path``; None when the history holds no training loss and no evaluation."""
    metric = _metric_name(log_history, metric)
    train = [(r["step"], r["loss"]) for r in log_history if "loss" in r and "step" in r]
    evaluation = [(r["step"], r[metric]) for r in log_history if metric is not None and metric in r and "step" in r]
    if not train and not evaluation:
        return None
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    if train:
        left.plot(*zip(*train, strict=True), "-", label="training loss")
    left.set(xlabel="optimizer step", ylabel="training loss", title="Training loss")
    label = (metric or "evaluation").removeprefix("eval_")
    if evaluation:
        right.plot(*zip(*evaluation, strict=True), "o-", markersize=3, label=f"validation {label}")
        best = [(step, value) for step, value in evaluation if step == best_step]
        if best:
            right.plot(*best[0], "*", markersize=14, color="tab:red", label=f"best checkpoint (step {best_step})")
    if baseline is not None:
        right.axhline(baseline, linestyle="--", color="tab:gray", label=f"{baseline_label} ({baseline:.3f})")
    right.set(xlabel="optimizer step", ylabel=label, title=f"Validation {label}")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8)
    return save_figure(figure, path)


def _metric_name(log_history: Sequence[Mapping[str, Any]], metric: str | None) -> str | None:
    if metric is not None:
        return metric if metric.startswith("eval_") else f"eval_{metric}"
    keys = {key for record in log_history for key in record}
    return next((name for name in _METRICS if name in keys), None)
