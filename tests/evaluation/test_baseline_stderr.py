"""The baseline columns of ``protconv evaluate`` carry a bootstrap standard error, computed as the model columns'
are: the same metric on the baselines' kept predictions, the same resamples of ``metrics.bootstrap_stderr``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protconv.downstream.baselines import run_baselines
from protconv.evaluation import EvaluateOptions, evaluate, read_suite, supervised
from protconv.metrics import bootstrap_stderr, spearman


def _by_hand(predicted: np.ndarray, truth: np.ndarray, regression: bool) -> float | None:
    def metric(index: np.ndarray) -> float:
        if regression:
            return spearman(predicted[index], truth[index])
        return float((predicted[index] == truth[index]).mean())

    return bootstrap_stderr(metric, len(truth), 100)  # the default --bootstrap of evaluate


def test_baseline_rows_carry_the_bootstrap_stderr_of_their_predictions(
    tmp_path, monkeypatch, supervised_suite_yaml
) -> None:
    computed: dict[str, dict] = {}  # task kind -> the baselines' results inside evaluate

    def kept(task, splits, options):
        computed[task] = run_baselines(task, splits, options)
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
            expected = _by_hand(predictions.predicted, predictions.labels, regression)
            assert row["stderr"] == pytest.approx(expected, rel=1e-12), row
