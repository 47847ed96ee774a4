"""The figures of an evaluation: per task and metric, bars of every column with their standard errors; per
zero-shot task with several assays, each assay's Spearman of the first two models against each other."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .results import Record


def write_plots(folder: Path, records: Sequence[Record], models: Sequence[str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task in dict.fromkeys(r.task for r in records):
        rows = [r for r in records if r.task == task and r.assay is None]
        metrics = list(dict.fromkeys(r.metric for r in rows))
        figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
        for axis, metric in zip(axes[0], metrics, strict=True):
            mine = [r for r in rows if r.metric == metric]
            errors = [r.stderr or 0.0 for r in mine]
            axis.bar(range(len(mine)), [r.value for r in mine], yerr=errors, capsize=3)
            axis.set_xticks(range(len(mine)), [Path(r.model).name or r.model for r in mine], rotation=45, ha="right")
            axis.set_title(metric)
        figure.suptitle(task)
        figure.tight_layout()
        written.append(folder / f"{task}.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
        written += _scatter(plt, folder, task, records, models)
    return written


def _scatter(plt, folder: Path, task: str, records: Sequence[Record], models: Sequence[str]) -> list[Path]:
    per_assay = {
        (r.model, r.assay): r.value
        for r in records
        if r.task == task and r.metric == "spearman" and r.assay and not r.assay.startswith("type:")
    }
    if len(models) < 2 or not per_assay:
        return []
    first, second = models[0], models[1]
    assays = sorted({assay for _, assay in per_assay if (first, assay) in per_assay and (second, assay) in per_assay})
    figure, axis = plt.subplots(figsize=(4, 4))
    axis.scatter([per_assay[first, a] for a in assays], [per_assay[second, a] for a in assays])
    axis.axline((0, 0), slope=1, color="grey", linewidth=0.8)
    axis.set_xlabel(f"{Path(first).name} Spearman")
    axis.set_ylabel(f"{Path(second).name} Spearman")
    axis.set_title(f"{task}: per assay")
    figure.tight_layout()
    path = folder / f"{task}_spearman_scatter.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return [path]
