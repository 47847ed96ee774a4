"""Zero-shot fitness metrics per assay, as ProteinGym defines them, and ProteinGym's summary: the mean over
assays within each ``coarse_selection_type``, then over the types, with a bootstrap standard error over assays."""

from __future__ import annotations

import itertools
import threading
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


class TruthResamples:
    """The truth side of an assay's bootstrap (its measured scores' dense codes, and per chunk of resampled rows
    their ``CodedRows`` and ranks): the same for every column of the assay (same seed, same rows), so computed by
    the first column and kept for the others while that fits in ``cells`` entries (else recomputed, as one column
    alone does). The chunks are asked in order (``bootstrap_stderrs`` draws them so); a lock keeps threads apart."""

    def __init__(self, truth: Sequence[float], samples: int, cells: int = 1 << 22) -> None:
        self.values = np.asarray(truth, dtype=np.float64)
        self.codes = dense_codes(self.values)
        self.keep = samples * len(self.values) <= cells
        self._chunks: list[tuple[CodedRows, np.ndarray]] = []
        self._lock = threading.Lock()

    def chunk(self, number: int, rows: np.ndarray) -> tuple[CodedRows, np.ndarray]:
        with self._lock:
            if number < len(self._chunks):
                return self._chunks[number]
            coded = CodedRows(self.codes[0][rows], self.codes[1])
            found = (coded, coded.ranks())
            if self.keep and number == len(self._chunks):
                self._chunks.append(found)
            return found


def assay_metrics(
    truth: Sequence[float], bins: Sequence[int] | None, scores: Sequence[float], samples: int = 100, seed: int = 0,
    shared: TruthResamples | None = None,
) -> dict[str, Figure]:  # fmt: skip
    """Every metric that can be computed on this assay (no AUC/MCC without labels), with a bootstrap standard
    error over variants: all resamples at once (``_Resamples``), the same resamples as ``bootstrap_stderr``.
    ``shared`` (built from ``truth`` and ``samples``, seed 0) carries the truth side across an assay's columns."""
    if shared is None or seed != 0:
        shared = TruthResamples(truth, samples, cells=0)
    y, s = shared.values, np.asarray(scores, dtype=np.float64)
    b = np.asarray(bins) if bins is not None else None
    names = [name for name in _METRICS if b is not None or name not in ("auc", "mcc")]
    resamples, chunks = _Resamples(b, shared, dense_codes(s)), itertools.count()
    stderrs = bootstrap_stderrs(lambda rows: resamples.metrics(rows, next(chunks)), len(y), samples, seed)
    return {name: Figure(_METRICS[name](y, b, s), stderrs.get(name)) for name in names}


@dataclass(frozen=True)
class _Resamples:
    """One assay's labels and scores as dense codes, its truth shared: every metric of a matrix of resampled index
    rows, one value per row (each array gathered and counted once per chunk of rows)."""

    bins: np.ndarray | None
    truth: TruthResamples
    scores: tuple[np.ndarray, np.ndarray]  # dense codes, distinct values

    def metrics(self, rows: np.ndarray, chunk: int) -> dict[str, np.ndarray]:
        truth, truth_ranks = self.truth.chunk(chunk, rows)
        scores = CodedRows(self.scores[0][rows], self.scores[1])
        score_ranks = scores.ranks()
        found = {
            "spearman": row_pearson(score_ranks, truth_ranks),
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
