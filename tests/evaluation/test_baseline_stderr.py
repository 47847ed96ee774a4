"""The baseline columns of ``protconv evaluate`` carry a bootstrap standard error, computed as the model columns'
are: the same metric on the baselines' kept predictions, the same resamples of ``metrics.bootstrap_stderr`` (of
examples, or for the per-residue task of whole proteins)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protconv.downstream.baselines import run_baselines
from protconv.evaluation import EvaluateOptions, evaluate, read_suite, supervised
from protconv.metrics import bootstrap_stderr, spearman


def _by_hand(predicted: np.ndarray, truth: np.ndarray, regression: bool, labels: list | None) -> float | None:
    """``labels``: the per-residue labels of the scored split's proteins (their scored residues are the flat
    predictions, protein after protein); the resampled units are then the proteins that have any."""
    if regression:
        return bootstrap_stderr(lambda index: spearman(predicted[index], truth[index]), len(truth), 100)
    if labels is None:
        return bootstrap_stderr(lambda index: float((predicted[index] == truth[index]).mean()), len(truth), 100)
    proteins, start = [], 0
    for protein in labels:
        scored = sum(label != -100 for label in protein)
        if scored:
            proteins.append((float((predicted[start : start + scored] == truth[start : start + scored]).sum()), scored))
        start += scored
    right, counts = np.array([p[0] for p in proteins]), np.array([p[1] for p in proteins])
    return bootstrap_stderr(lambda index: right[index].sum() / counts[index].sum(), len(proteins), 100)


def test_baseline_rows_carry_the_bootstrap_stderr_of_their_predictions(
    tmp_path, monkeypatch, supervised_suite_yaml
) -> None:
    computed: dict[str, dict] = {}  # task kind -> the baselines' results inside evaluate
    scored: dict[str, list] = {}  # task kind -> the scored split's labels

    def kept(task, splits, options):
        computed[task] = run_baselines(task, splits, options)
        scored[task] = splits["test"].labels
        return computed[task]

    monkeypatch.setattr(supervised, "run_baselines", kept)
    suite = tmp_path / "suite.yaml"
    suite.write_text(supervised_suite_yaml, encoding="utf-8")
    evaluate([], read_suite(suite), EvaluateOptions(tmp_path / "out"))
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    rows = {(r["task"], r["model"]): r for r in saved if r["assay"] is None}
    for task, name in (("regression", "stability"), ("token-classification", "ss3")):
        for baseline, result in computed[task].items():
            row = rows[name, supervised.BASELINE_COLUMNS[baseline]]
            regression = task == "regression"
            assert row["value"] == pytest.approx(result.metrics["test"]["spearman" if regression else "accuracy"])
            assert row["stderr"] is not None and row["stderr"] > 0, row
            predictions = result.predictions["test"]
            per_residue = scored[task] if task == "token-classification" else None
            expected = _by_hand(predictions.predicted, predictions.labels, regression, per_residue)
            assert row["stderr"] == pytest.approx(expected, rel=1e-12), row
