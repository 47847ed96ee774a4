"""Metrics of downstream tasks and variant scores, computed the same way for fine-tuned models, supervised baselines
and `protconv score` (one module that `downstream/` and `inference/` both import).

Implemented with numpy (no scipy/sklearn dependency); each function is checked against hand-computed cases.
"""

from __future__ import annotations

from collections.abc import Callable

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
