"""Metrics of downstream tasks and variant scores, computed the same way for fine-tuned models, supervised baselines
and `protconv score` (one module that `downstream/` and `inference/` both import).

Implemented with numpy (no scipy/sklearn dependency); each function is checked against hand-computed cases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .data.tasks.vocabulary import TaskType
from .modeling.vocabulary import IGNORE_INDEX


class NonFiniteError(RuntimeError):
    """Fine-tuning met a NaN or infinity: in a training loss, in the predictions to be scored, or in the weights
    to be saved. Nothing is reported or written from such a run."""


_DIVERGED = "the model has diverged: lower --learning_rate, check the labels, prefer bf16 to fp16"


def check_finite(values: np.ndarray, what: str, hint: str = _DIVERGED) -> None:
    """Raise ``NonFiniteError`` if ``values`` holds a NaN or an infinity (``what`` names them in the message)."""
    values = np.asarray(values)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        bad = int(values.size - np.isfinite(values).sum())
        raise NonFiniteError(
            f"{what}: {bad} of {values.size} values are NaN or infinite; no metric is computed from them ({hint})"
        )


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (the convention of Spearman's rho)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    first = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(values)]
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]  # each tie group: the mean of its ranks
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(average_ranks(x), average_ranks(y))


def regression_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predictions, labels = np.ravel(predictions), np.ravel(labels)
    return {
        "spearman": spearman(predictions, labels),
        "pearson": pearson(predictions, labels),
        "mse": float(np.mean((predictions - labels) ** 2)),
    }


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 over the classes present in labels or predictions."""
    predicted = np.asarray(logits).argmax(-1).ravel()
    labels = np.asarray(labels).ravel()
    return {"accuracy": float((predicted == labels).mean()), "macro_f1": macro_f1(predicted, labels)}


def macro_f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    scores = []
    for cls in np.union1d(predicted, labels):
        true_positive = np.sum((predicted == cls) & (labels == cls))
        denominator = np.sum(predicted == cls) + np.sum(labels == cls)
        scores.append(2.0 * true_positive / denominator)
    return float(np.mean(scores))


def token_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Per-residue accuracy over positions whose label is not -100 (padding, special tokens, masked residues)."""
    labels = np.asarray(labels)
    keep = labels != IGNORE_INDEX
    predicted = np.asarray(logits).argmax(-1)
    return {"accuracy": float((predicted[keep] == labels[keep]).mean()), "residues": int(keep.sum())}


def metrics_for(task: TaskType, label_scale: tuple[float, float] = (0.0, 1.0)) -> Callable:
    """A ``compute_metrics`` for ``transformers.Trainer``.

    ``label_scale`` = (mean, std) of the regression normalisation: predictions and labels are mapped back to
    the assay's units before scoring, so reported MSE is in those units.

    Non-finite predictions (or labels) raise ``NonFiniteError``: a metric of NaN predictions is meaningless
    (Spearman's rho of all-NaN predictions comes out as 1.0), so none is ever reported.
    """
    mean, std = label_scale

    def compute(prediction) -> dict[str, float]:
        logits, labels = prediction.predictions, prediction.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        check_finite(logits, "predictions")
        check_finite(labels, "labels", "labels must be finite numbers")
        if task == "regression":
            return regression_metrics(np.ravel(logits) * std + mean, np.ravel(labels) * std + mean)
        if task == "classification":
            return classification_metrics(logits, labels)
        return token_metrics(logits, labels)

    return compute


def per_class_metrics(predicted: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of every class that occurs in ``labels`` or ``predicted``, keyed by its
    name (``names[id]``), in id order. A class never predicted has precision 0 (and one never seen, recall 0)."""
    predicted, labels = np.ravel(predicted), np.ravel(labels)
    scores: dict[str, dict[str, float]] = {}
    for cls in np.union1d(predicted, labels).tolist():
        true_positive = int(np.sum((predicted == cls) & (labels == cls)))
        n_predicted, support = int(np.sum(predicted == cls)), int(np.sum(labels == cls))
        precision = true_positive / n_predicted if n_predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2.0 * true_positive / (n_predicted + support)
        name = names[cls] if 0 <= cls < len(names) else str(cls)
        scores[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of 0/1 ``labels`` ranked by ``scores`` (Mann-Whitney U with average ranks, so a
    tie between a positive and a negative counts one half, as scikit-learn's ``roc_auc_score``)."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def matthews(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Matthews correlation of two 0/1 vectors (0 when a margin is empty, as scikit-learn returns)."""
    truth, guess = np.asarray(labels).astype(bool), np.asarray(predicted).astype(bool)
    tp, tn = float(np.sum(truth & guess)), float(np.sum(~truth & ~guess))
    fp, fn = float(np.sum(~truth & guess)), float(np.sum(truth & ~guess))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator > 0 else 0.0


def median_mcc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ProteinGym's MCC: the scores binarised at their median (above it: predicted fit)."""
    scores = np.asarray(scores, dtype=np.float64)
    return matthews(labels, scores > np.median(scores))


def ndcg_top(truth: np.ndarray, scores: np.ndarray, top_percent: float = 10.0) -> float:
    """ProteinGym's NDCG@10%: gains are the min-max scaled true scores, the cut-off ``k`` is the floor of
    ``top_percent`` of the variants, ranks come from the scores (higher first; ties broken by order, stably)."""
    truth, scores = np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    k = int(np.floor(len(truth) * top_percent / 100.0))
    spread = truth.max() - truth.min()
    gains = (truth - truth.min()) / spread if spread > 0 else np.zeros_like(truth)
    dcg = _discounted_gain(gains, np.argsort(-scores, kind="mergesort"), k)
    ideal = _discounted_gain(gains, np.argsort(-gains, kind="mergesort"), k)
    return dcg / ideal if ideal > 0 else 0.0


def _discounted_gain(gains: np.ndarray, order: np.ndarray, k: int) -> float:
    top = gains[order[:k]]
    return float(np.sum(top / np.log2(np.arange(2, len(top) + 2))))


def top_recall(truth: np.ndarray, scores: np.ndarray, top_percent: float = 10.0) -> float:
    """ProteinGym's top-10% recall: the share of the truly top ``top_percent`` variants (at or above that
    percentile, linear interpolation) that the scores also put in their top ``top_percent``."""
    truth, scores = np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    true_top = truth >= np.percentile(truth, 100.0 - top_percent)
    model_top = scores >= np.percentile(scores, 100.0 - top_percent)
    return float(np.sum(true_top & model_top) / true_top.sum()) if true_top.sum() else 0.0


def bootstrap_stderr(
    statistic: Callable[[np.ndarray], float], size: int, samples: int = 100, seed: int = 0
) -> float | None:
    """The standard deviation (ddof 1) of ``statistic(indices)`` over ``samples`` resamples with replacement of
    ``range(size)``; ``None`` with fewer than two items or samples. Non-finite resample values are left out."""
    if size < 2 or samples < 2:
        return None
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, size, size)) for _ in range(samples)], dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if len(values) > 1 else None


# Every bootstrap resample at once: a matrix of resampled indices (one row per resample, drawn from the same random
# stream as ``bootstrap_stderr``), metrics computed along its rows. Ranks, medians and percentiles come from counting
# dense codes per row (one sort of the full sample, none per resample), so the standard errors of a 5,000-variant
# assay cost tens of milliseconds rather than a Python loop over resamples.


def dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's index among the sorted distinct values (equal values, equal codes), and those values."""
    distinct, codes = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True)
    return codes.ravel().astype(np.int64), distinct


def resample_rows(size: int, samples: int, seed: int = 0, cells: int = 1 << 16) -> Iterator[np.ndarray]:
    """``samples`` rows of ``size`` indices drawn with replacement, in chunks of about ``cells`` entries (memory
    bounded for assays of any size); the rows are those ``bootstrap_stderr`` draws one at a time."""
    rng = np.random.default_rng(seed)
    per_chunk, done = max(1, cells // max(size, 1)), 0
    while done < samples:
        rows = min(per_chunk, samples - done)
        yield rng.integers(0, size, (rows, size))
        done += rows


def bootstrap_stderrs(
    statistics: Callable[[np.ndarray], dict[str, np.ndarray]], size: int, samples: int = 100, seed: int = 0
) -> dict[str, float | None]:
    """``bootstrap_stderr`` of several statistics at once: ``statistics`` maps a matrix of index rows to each
    statistic's value per row (the rows drawn once for all of them)."""
    if size < 2 or samples < 2:
        return {}
    found: dict[str, list[np.ndarray]] = {}
    for rows in resample_rows(size, samples, seed):
        for name, values in statistics(rows).items():
            found.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    return {name: _stderr(np.concatenate(chunks)) for name, chunks in found.items()}


def _stderr(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1)) if len(values) > 1 else None


class CodedRows:
    """Rows of resampled values held as dense codes, with each row's cumulative code counts: their average ranks,
    order statistics and percentiles without sorting a row."""

    def __init__(self, codes: np.ndarray, distinct: np.ndarray) -> None:
        rows, levels = codes.shape[0], len(distinct)
        counts = np.bincount((np.arange(rows)[:, None] * levels + codes).ravel(), minlength=rows * levels)
        self.codes, self.distinct, self.counts = codes, distinct, counts.reshape(rows, levels)
        self.cumulative = np.cumsum(self.counts, axis=1)

    @property
    def values(self) -> np.ndarray:
        return self.distinct[self.codes]

    def ranks(self) -> np.ndarray:
        """``average_ranks`` of every row: the ranks below a tie group plus the mean of the group's ranks."""
        return np.take_along_axis(self.cumulative - (self.counts - 1) / 2.0, self.codes, axis=1)

    def order_statistic(self, position: int) -> np.ndarray:
        """Each row's value at 0-based ``position`` in sorted order."""
        return self.distinct[(self.cumulative <= position).sum(axis=1)]

    def percentile(self, q: float) -> np.ndarray:
        """``np.percentile(row, q)`` of every row (linear interpolation)."""
        where = (self.codes.shape[1] - 1) * q / 100.0
        below = int(np.floor(where))
        low = self.order_statistic(below)
        if below + 1 >= self.codes.shape[1]:
            return low
        high, weight = self.order_statistic(below + 1), where - below
        return low + (high - low) * weight if weight < 0.5 else high - (high - low) * (1.0 - weight)

    def median(self) -> np.ndarray:
        size = self.codes.shape[1]
        if size % 2:
            return self.order_statistic(size // 2)
        return (self.order_statistic(size // 2 - 1) + self.order_statistic(size // 2)) / 2.0

    def descending_order(self) -> np.ndarray:
        """Per row, positions by value from the highest, ties in row order (a radix sort up to 65,536 codes)."""
        levels = len(self.distinct)
        key = (levels - 1 - self.codes).astype(np.uint16 if levels <= 1 << 16 else np.int64)
        return np.argsort(key, axis=1, kind="stable")


def row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(axis=1) / denominator, np.nan)


def row_roc_auc(labels: np.ndarray, score_ranks: np.ndarray) -> np.ndarray:
    """``roc_auc`` of every row, from 0/1 label rows and the row ranks of the scores."""
    positives = labels.sum(axis=1).astype(np.float64)
    negatives = labels.shape[1] - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((score_ranks * labels).sum(axis=1) - positives * (positives + 1) / 2.0) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def row_median_mcc(labels: np.ndarray, scores: CodedRows) -> np.ndarray:
    truth, guess = labels.astype(bool), scores.values > scores.median()[:, None]
    tp, tn = (truth & guess).sum(axis=1).astype(np.float64), (~truth & ~guess).sum(axis=1).astype(np.float64)
    fp, fn = (~truth & guess).sum(axis=1).astype(np.float64), (truth & ~guess).sum(axis=1).astype(np.float64)
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (tp * tn - fp * fn) / denominator, 0.0)


def row_ndcg_top(truth: CodedRows, scores: CodedRows, top_percent: float = 10.0) -> np.ndarray:
    """``ndcg_top`` of every row."""
    values = truth.values
    k = int(np.floor(values.shape[1] * top_percent / 100.0))
    low, high = truth.order_statistic(0)[:, None], truth.order_statistic(values.shape[1] - 1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        gains = np.where(high > low, (values - low) / (high - low), 0.0)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(gains, scores.descending_order()[:, :k], axis=1) * discount).sum(axis=1)
    ideal = (np.take_along_axis(gains, truth.descending_order()[:, :k], axis=1) * discount).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal > 0, dcg / ideal, 0.0)


def row_top_recall(truth: CodedRows, scores: CodedRows, top_percent: float = 10.0) -> np.ndarray:
    true_top = truth.values >= truth.percentile(100.0 - top_percent)[:, None]
    model_top = scores.values >= scores.percentile(100.0 - top_percent)[:, None]
    found = true_top.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(found > 0, (true_top & model_top).sum(axis=1) / found, 0.0)
