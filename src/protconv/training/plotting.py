"""A PNG of a run's training and validation curves, drawn from its metrics JSONL (so it can be redrawn later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(records: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Loss and perplexity against step for both splits, plus validation masked accuracy. None if nothing to draw."""
    train = [r for r in records if r.get("split") == "train"]
    validation = [r for r in records if r.get("split") == "validation"]
    if not train and not validation:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for rows, label, style in ((train, "train", "-"), (validation, "validation", "o-")):
        if rows:
            loss_axis.plot([r["step"] for r in rows], [r["perplexity"] for r in rows], style, label=label, markersize=3)
    loss_axis.set(
        xlabel="optimizer step", ylabel="perplexity (masked tokens)", yscale="log", title="Masked-LM perplexity"
    )
    loss_axis.legend()
    if validation:
        accuracy_axis.plot([r["step"] for r in validation], [r["accuracy"] for r in validation], "o-", markersize=3)
    accuracy_axis.set(xlabel="optimizer step", ylabel="masked-token accuracy", title="Validation accuracy")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
