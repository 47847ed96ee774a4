"""The zero-shot metrics against brute-force references (no scipy/sklearn), on random and on tied data; BLOSUM62
entries against the published matrix; ProteinGym's aggregation by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protconv.evaluation.blosum import BLOSUM62, blosum_scores
from protconv.evaluation.zero_shot import proteingym_summary, type_means
from protconv.inference.score import Variant, parse_mutant
from protconv.metrics import bootstrap_stderr, matthews, median_mcc, ndcg_top, roc_auc, top_recall


def brute_auc(labels, scores) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def brute_mcc(labels, predicted) -> float:
    tp = sum(1 for y, p in zip(labels, predicted, strict=True) if y and p)
    tn = sum(1 for y, p in zip(labels, predicted, strict=True) if not y and not p)
    fp = sum(1 for y, p in zip(labels, predicted, strict=True) if not y and p)
    fn = sum(1 for y, p in zip(labels, predicted, strict=True) if y and not p)
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def brute_ndcg(truth, scores, fraction=0.1) -> float:
    k = int(len(truth) * fraction)
    low, high = min(truth), max(truth)
    gains = [(t - low) / (high - low) for t in truth]
    by_score = sorted(range(len(truth)), key=lambda i: (-scores[i], i))[:k]
    by_gain = sorted(range(len(truth)), key=lambda i: (-gains[i], i))[:k]
    dcg = sum(gains[i] / math.log2(rank + 2) for rank, i in enumerate(by_score))
    return dcg / sum(gains[i] / math.log2(rank + 2) for rank, i in enumerate(by_gain))


@pytest.mark.parametrize("tied", [False, True])
def test_auc_and_mcc_match_brute_force(tied: bool) -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, 50).astype(float) if tied else rng.normal(size=50)
    labels = rng.integers(0, 2, 50)
    assert roc_auc(labels, scores) == pytest.approx(brute_auc(labels, scores))
    predicted = scores > np.median(scores)
    assert median_mcc(labels, scores) == pytest.approx(brute_mcc(labels, predicted))
    assert matthews(labels, labels) == pytest.approx(1.0)
    assert matthews(labels, np.zeros(50)) == 0.0


def test_auc_hand_computed_with_a_tie() -> None:
    # positives 0.9 and 0.5, negatives 0.5 and 0.1: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5 half, 0.5>0.1) = 3.5 / 4
    assert roc_auc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(0.875)
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


@pytest.mark.parametrize("tied", [False, True])
def test_ndcg_matches_brute_force(tied: bool) -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=73)
    scores = rng.integers(0, 5, 73).astype(float) if tied else truth + rng.normal(size=73)
    assert ndcg_top(truth, scores) == pytest.approx(brute_ndcg(list(truth), list(scores)))
    assert ndcg_top(truth, truth) == pytest.approx(1.0)


def test_top_recall_hand_computed() -> None:
    truth = np.arange(20.0)  # the 90th percentile is 17.1: the top are 18 and 19
    scores = np.arange(20.0)
    scores[18], scores[0] = -1.0, 100.0  # the model's top 10%: 100 (truth 0) and 19
    assert top_recall(truth, scores) == pytest.approx(0.5)
    assert top_recall(truth, truth) == 1.0


def test_bootstrap_stderr_of_the_mean_is_near_the_textbook_value() -> None:
    values = np.random.default_rng(3).normal(size=200)
    stderr = bootstrap_stderr(lambda index: float(values[index].mean()), len(values), samples=400)
    assert stderr == pytest.approx(values.std(ddof=1) / math.sqrt(len(values)), rel=0.2)
    assert bootstrap_stderr(lambda index: 0.0, 1) is None


def test_blosum62_entries_are_the_published_ones() -> None:
    published = {("A", "A"): 4, ("W", "W"): 11, ("C", "C"): 9, ("W", "C"): -2, ("D", "E"): 2,
                 ("R", "K"): 2, ("I", "V"): 3, ("F", "Y"): 3, ("G", "W"): -2, ("P", "W"): -4}  # fmt: skip
    for (a, b), value in published.items():
        assert BLOSUM62[a, b] == BLOSUM62[b, a] == value
    variant = Variant(2, "A1W:D2E", parse_mutant("A1W:D2E", "ADK", 1, "x"))
    assert blosum_scores([variant]) == [-3 + 2]


def test_proteingym_aggregation_is_the_mean_of_type_means() -> None:
    values, types = [0.1, 0.3, 0.5, 0.9], ["Activity", "Activity", "Activity", "Stability"]
    assert type_means(values, types) == pytest.approx({"Activity": 0.3, "Stability": 0.9})
    summary = proteingym_summary(values, types, samples=200)
    assert summary.value == pytest.approx(0.6)  # not the plain mean 0.45
    assert summary.stderr is not None and summary.stderr > 0


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("size", [5, 38, 401])
def test_all_resamples_at_once_equal_one_resample_at_a_time(tied: bool, size: int) -> None:
    """assay_metrics' matrix bootstrap (ranks, medians, percentiles by counting codes) gives the standard errors
    of the plain per-resample loop over the same resamples, ties included, in chunks of any size."""
    from protconv import metrics
    from protconv.evaluation.zero_shot import _METRICS, assay_metrics

    rng = np.random.default_rng(size)
    truth = rng.integers(0, 6, size).astype(float) if tied else rng.normal(size=size)
    scores = rng.integers(0, 4, size).astype(float) if tied else rng.normal(size=size)
    bins = rng.integers(0, 2, size)
    found = assay_metrics(truth, bins, scores, 30)
    for name, metric in _METRICS.items():
        loop = bootstrap_stderr(lambda i, m=metric: m(truth[i], bins[i], scores[i]), size, 30)
        assert found[name].stderr == pytest.approx(loop, rel=1e-9, abs=1e-12), name
    rows = list(metrics.resample_rows(size, 30, cells=size * 7))  # chunks of 7 rows: the same stream
    assert np.array_equal(np.concatenate(rows), np.random.default_rng(0).integers(0, size, (30, size)))


def test_a_shared_truth_side_gives_every_column_the_figures_it_gets_alone() -> None:
    from protconv.evaluation.zero_shot import TruthResamples, assay_metrics

    rng = np.random.default_rng(3)
    truth, bins = rng.integers(0, 40, 3000).astype(float), rng.integers(0, 2, 3000)  # ties in the truth
    shared = TruthResamples(truth, 30)
    for column in range(3):
        scores = rng.normal(size=3000).round(column)
        assert assay_metrics(truth, bins, scores, 30, shared=shared) == assay_metrics(truth, bins, scores, 30)
    assert shared.keep and len(shared._chunks) > 1  # kept after the first column, read by the others
