"""The figures of an evaluation: per task, bars of every column for each metric with their standard errors; per
zero-shot task with several assays, each assay's Spearman of the first two models against each other."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..plots.figures import pyplot
from .results import Record


def write_plots(folder: Path, records: Sequence[Record], models: Sequence[str]) -> list[Path]:
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task in dict.fromkeys(r.task for r in records):
        written.append(_bars(plt, folder, task, [r for r in records if r.task == task and r.assay is None]))
        written += _scatter(plt, folder, task, records, models)
    return written


def _bars(plt, folder: Path, task: str, rows: Sequence[Record]) -> Path:
    """One axis: a group of bars per metric, one bar per column (one axis draws far faster than one per metric)."""
    metrics = list(dict.fromkeys(r.metric for r in rows))
    columns = list(dict.fromkeys(r.model for r in rows))
    cells = {(r.metric, r.model): r for r in rows}
    width = 0.8 / max(len(columns), 1)
    figure, axis = plt.subplots(figsize=(1.2 + 1.1 * len(metrics), 3.2))
    for number, column in enumerate(columns):
        found = [(m, cells[m, column]) for m in metrics if (m, column) in cells]
        places = [metrics.index(m) + (number - (len(columns) - 1) / 2) * width for m, _ in found]
        axis.bar(places, [r.value for _, r in found], width, yerr=[r.stderr or 0.0 for _, r in found], capsize=2,
                 label=Path(column).name or column)  # fmt: skip
    axis.set_xticks(range(len(metrics)), metrics)
    axis.set_title(task)
    axis.legend(fontsize="small")
    path = folder / f"{task}.png"
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.9)  # fixed margins: no second layout draw
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


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
