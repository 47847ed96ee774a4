"""Zero-shot fitness metrics per assay, as ProteinGym defines them, and ProteinGym's summary: the mean over
assays within each ``coarse_selection_type``, then over the types, with a bootstrap standard error over assays."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics import (
    CodedRows,
    bootstrap_stderr,
    bootstrap_stderrs,
    dense_codes,
    median_mcc,
    ndcg_top,
    roc_auc,
    row_median_mcc,
    row_ndcg_top,
    row_pearson,
    row_roc_auc,
    row_top_recall,
    spearman,
    top_recall,
)

#: Metric name -> f(true scores, 0/1 labels, model scores); the label metrics need DMS_score_bin.
_METRICS: dict[str, Callable[[np.ndarray, np.ndarray | None, np.ndarray], float]] = {
    "spearman": lambda truth, bins, scores: spearman(scores, truth),
    "auc": lambda truth, bins, scores: roc_auc(bins, scores) if bins is not None else float("nan"),
    "mcc": lambda truth, bins, scores: median_mcc(bins, scores) if bins is not None else float("nan"),
    "ndcg": lambda truth, bins, scores: ndcg_top(truth, scores),
    "recall_top10": lambda truth, bins, scores: top_recall(truth, scores),
}
ZERO_SHOT_METRICS = tuple(_METRICS)


@dataclass(frozen=True)
class Figure:
    value: float
    stderr: float | None


def assay_metrics(
    truth: Sequence[float], bins: Sequence[int] | None, scores: Sequence[float], samples: int = 100, seed: int = 0
) -> dict[str, Figure]:
    """Every metric that can be computed on this assay (no AUC/MCC without labels), with a bootstrap standard
    error over variants: all resamples at once (``_Resamples``), the same resamples as ``bootstrap_stderr``."""
    y, s = np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    b = np.asarray(bins) if bins is not None else None
    names = [name for name in _METRICS if b is not None or name not in ("auc", "mcc")]
    stderrs = bootstrap_stderrs(_Resamples(b, dense_codes(y), dense_codes(s)).metrics, len(y), samples, seed)
    return {name: Figure(_METRICS[name](y, b, s), stderrs.get(name)) for name in names}


@dataclass(frozen=True)
class _Resamples:
    """One assay's truth, labels and scores as dense codes: every metric of a matrix of resampled index rows, one
    value per row (each array gathered and counted once per chunk of rows)."""

    bins: np.ndarray | None
    truth: tuple[np.ndarray, np.ndarray]  # dense codes, distinct values
    scores: tuple[np.ndarray, np.ndarray]

    def metrics(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        truth = CodedRows(self.truth[0][rows], self.truth[1])
        scores = CodedRows(self.scores[0][rows], self.scores[1])
        score_ranks = scores.ranks()
        found = {
            "spearman": row_pearson(score_ranks, truth.ranks()),
            "ndcg": row_ndcg_top(truth, scores),
            "recall_top10": row_top_recall(truth, scores),
        }
        if self.bins is not None:
            bins = self.bins[rows]
            found["auc"], found["mcc"] = row_roc_auc(bins, score_ranks), row_median_mcc(bins, scores)
        return found


def proteingym_summary(values: Sequence[float], types: Sequence[str], samples: int = 1000, seed: int = 0) -> Figure:
    """Mean within each selection type, then over types; stderr by resampling assays with replacement."""
    v, t = np.asarray(values, dtype=np.float64), np.asarray(types)

    def summary(index: np.ndarray) -> float:
        by_type: dict[str, list[float]] = defaultdict(list)
        for value, kind in zip(v[index], t[index], strict=True):
            by_type[str(kind)].append(float(value))
        return float(np.mean([np.mean(group) for group in by_type.values()]))

    return Figure(summary(np.arange(len(v))), bootstrap_stderr(summary, len(v), samples, seed))


def type_means(values: Sequence[float], types: Sequence[str]) -> dict[str, float]:
    by_type: dict[str, list[float]] = defaultdict(list)
    for value, kind in zip(values, types, strict=True):
        by_type[kind].append(value)
    return {kind: float(np.mean(group)) for kind, group in sorted(by_type.items())}
