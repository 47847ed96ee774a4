"""Zero-shot fitness metrics per assay, as ProteinGym defines them, and ProteinGym's summary: the mean over
assays within each ``coarse_selection_type``, then over the types, with a bootstrap standard error over assays."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..metrics import bootstrap_stderr, median_mcc, ndcg_top, roc_auc, spearman, top_recall

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
    error over variants."""
    y, s = np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    b = np.asarray(bins) if bins is not None else None
    found = {}
    for name, metric in _METRICS.items():
        if b is None and name in ("auc", "mcc"):
            continue
        value = metric(y, b, s)
        stderr = bootstrap_stderr(partial(_resampled, metric, y, b, s), len(y), samples, seed)
        found[name] = Figure(value, stderr)
    return found


def _resampled(
    metric: Callable[[np.ndarray, np.ndarray | None, np.ndarray], float],
    truth: np.ndarray,
    bins: np.ndarray | None,
    scores: np.ndarray,
    index: np.ndarray,
) -> float:
    return metric(truth[index], bins[index] if bins is not None else None, scores[index])


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
