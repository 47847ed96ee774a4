"""The baselines keep their predictions beside their metrics (what ``evaluate`` bootstraps), aligned with the labels
item by item, and ``protconv baseline``'s outputs do not change for it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protconv.data.task_files import LabelledSequences, read_csv_task, read_residue_task
from protconv.downstream.baselines import cnn_baseline, linear_baseline
from protconv.metrics import spearman
from protconv.modeling.vocabulary import IGNORE_INDEX
from tests.helpers import DATA


def _splits(task: str) -> dict:
    if task == "regression":
        return {
            split: read_csv_task(DATA / "gb1_three_vs_rest_slice.csv", split=split)
            for split in ("train", "valid", "test")
        }
    if task == "token-classification":
        files = [DATA / f"ss_{kind}_slice.fasta" for kind in ("sequences", "labels", "mask")]
        return {split: read_residue_task(*files, classes="CHE", split=split)[0] for split in ("train", "valid", "test")}
    homology = read_csv_task(DATA / "remote_homology_slice.csv", label_kind="int")
    few = LabelledSequences(homology.sequences[:24], homology.labels[:24])  # the logistic fit: fast on few proteins
    return {"train": few, "valid": few}


def _labels(task: str, data) -> np.ndarray:
    """Per example, or each sequence's labelled residues in order (the probes' alignment)."""
    if task != "token-classification":
        return np.asarray(data.labels)
    return np.concatenate([np.asarray(labels)[np.asarray(labels) != IGNORE_INDEX] for labels in data.labels])


@pytest.mark.parametrize("task", ["regression", "token-classification", "classification"])
def test_both_baselines_keep_predictions_that_give_their_metrics(task) -> None:
    splits = _splits(task)
    results = {
        "linear": linear_baseline(task, splits, alphas=(1.0,)),
        "cnn": cnn_baseline(task, splits, epochs=1, batch_size=16, channels=8),
    }
    for name, result in results.items():
        assert set(result.predictions) == set(result.metrics), name
        for split, predictions in result.predictions.items():
            np.testing.assert_allclose(predictions.labels, _labels(task, splits[split]), err_msg=f"{name} {split}")
            assert predictions.predicted.shape == predictions.labels.shape
            if task == "regression":
                figure = spearman(predictions.predicted, predictions.labels)
                assert figure == pytest.approx(result.metrics[split]["spearman"], abs=1e-12), (name, split)
            else:
                figure = float((predictions.predicted == predictions.labels).mean())
                assert figure == result.metrics[split]["accuracy"], (name, split)
        assert set(result.summary()) == {"metrics", "chosen", "seconds"}, "the --output_file payload is unchanged"


def test_baseline_command_output_file_keeps_its_keys(tmp_path) -> None:
    from protconv.cli import main

    out = tmp_path / "baselines.json"
    argv = ["baseline", "--task", "regression", "--train_file", str(DATA / "gb1_three_vs_rest_slice.csv"),
            "--baselines", "linear,cnn", "--cnn_epochs", "1", "--cnn_channels", "8", "--output_file", str(out),
            "--disable_tqdm"]  # fmt: skip
    assert main(argv) == 0
    payload = json.loads(out.read_text())
    assert {name: set(result) for name, result in payload.items()} == {
        "linear": {"metrics", "chosen", "seconds"},
        "cnn": {"metrics", "chosen", "seconds"},
    }
