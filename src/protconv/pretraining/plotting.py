"""A PNG of a run's training and validation curves, drawn from its metrics JSONL (so it can be redrawn later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: (metric, y label, title, log scale) of each panel, drawn when the run logged that metric.
_PANELS = (
    ("perplexity", "perplexity (masked tokens)", "Masked-LM perplexity", True),
    ("profile_kl", "KL(profile || prediction)", "Profile prediction", True),
    ("accuracy", "masked-token accuracy", "Validation masked accuracy", False),
)


def plot_curves(records: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Masked-LM perplexity and/or profile KL against step for both splits, plus validation masked accuracy.
    None if nothing to draw."""
    train = [r for r in records if r.get("split") == "train"]
    validation = [r for r in records if r.get("split") == "validation"]
    panels = [panel for panel in _PANELS if any(panel[0] in r for r in train + validation)]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, (metric, ylabel, title, log) in zip(axes[0], panels, strict=True):
        splits = [(validation, "validation", "o-")] if metric == "accuracy" else [
            (train, "train", "-"), (validation, "validation", "o-")
        ]  # fmt: skip
        for rows, label, style in splits:
            points = [(r["step"], r[metric]) for r in rows if metric in r]
            if points:
                axis.plot(*zip(*points, strict=True), style, label=label, markersize=3)
        axis.set(xlabel="optimizer step", ylabel=ylabel, title=title, yscale="log" if log else "linear")
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
