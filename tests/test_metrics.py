"""Downstream metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from protconv.metrics import (
    NonFiniteError,
    average_ranks,
    classification_metrics,
    metrics_for,
    pearson,
    regression_metrics,
    spearman,
    token_metrics,
)


def test_ranks_with_ties() -> None:
    assert average_ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_and_pearson_known_values() -> None:
    assert spearman([1, 2, 3, 4, 5], [10, 20, 30, 40, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x: 1..5, y: 2,1,4,3,5 -> d^2 sum = 4 -> rho = 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9933992677987828)
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert metrics["mse"] == pytest.approx(4 / 3) and metrics["spearman"] == pytest.approx(1.0)


def test_accuracy_and_macro_f1() -> None:
    logits = np.eye(3)[[0, 0, 1, 2]]  # predictions 0,0,1,2
    metrics = classification_metrics(logits, np.array([0, 1, 1, 2]))
    # F1: class0 = 2*1/(2+1) = 2/3, class1 = 2*1/(1+2) = 2/3, class2 = 1 -> mean 7/9
    assert metrics["accuracy"] == pytest.approx(0.75) and metrics["macro_f1"] == pytest.approx(7 / 9)


def test_token_accuracy_ignores_masked_positions() -> None:
    logits = np.eye(3)[[[0, 1, 2, 2], [1, 1, 0, 0]]]
    labels = np.array([[0, 1, 0, -100], [-100, 1, -100, -100]])
    assert token_metrics(logits, labels) == {"accuracy": pytest.approx(0.75), "residues": 4}


def test_regression_metrics_undo_label_normalisation() -> None:
    class Prediction:
        predictions = np.array([[0.0], [1.0]])
        label_ids = np.array([0.0, 2.0])

    metrics = metrics_for("regression", (10.0, 2.0))(Prediction())
    assert metrics["mse"] == pytest.approx(((12 - 14) ** 2) / 2)


@pytest.mark.parametrize("task", ["regression", "classification", "token-classification"])
def test_nan_predictions_are_never_scored(task) -> None:
    """All-NaN regression predictions used to score spearman=1.0; no metric may come out of them."""
    logits = {"regression": np.array([[np.nan], [1.0], [2.0]]), "classification": np.array([[0.1, np.inf]] * 3)}
    logits["token-classification"] = np.full((3, 4, 3), np.nan)
    labels = {"regression": np.array([0.0, 1.0, 2.0]), "classification": np.array([0, 1, 1])}
    labels["token-classification"] = np.zeros((3, 4), dtype=np.int64)

    class Prediction:
        predictions = logits[task]
        label_ids = labels[task]

    with pytest.raises(NonFiniteError, match=r"predictions: .* NaN or infinite"):
        metrics_for(task)(Prediction())
