"""The standard error of per-residue tasks (Q3) resamples whole proteins, not residues: a protein's residues are
not independent draws, and resampling them one by one understates the error. Checked on a hand-made case where
the two differ fourfold, and on the predictions table a fine-tuning run writes."""

from __future__ import annotations

import numpy as np
import pytest

from protconv.data.tasks.rows import LabelledSequences
from protconv.evaluation.finetuned import read_predictions
from protconv.evaluation.supervised import scored_figure, scored_residues
from protconv.metrics import bootstrap_stderr


def test_per_residue_stderr_resamples_proteins() -> None:
    """Four proteins of 25 scored residues: two predicted all right, two all wrong. Over residues (100 nearly
    independent coin flips) the error is about 0.05; over proteins (four draws of 0 or 1) about 0.25."""
    residues = np.array([25, 25, 25, 25])
    truth = np.zeros(100, dtype=np.int64)
    predicted = np.concatenate([np.zeros(50), np.ones(50)]).astype(np.int64)
    value, stderr = scored_figure("token-classification", predicted, truth, 200, residues)
    assert value == 0.5
    per_protein = np.array([1.0, 1.0, 0.0, 0.0])
    expected = bootstrap_stderr(lambda index: float(per_protein[index].mean()), 4, 200)
    over_residues = bootstrap_stderr(lambda index: float((predicted[index] == truth[index]).mean()), 100, 200)
    assert stderr == pytest.approx(expected, rel=1e-12)
    assert expected is not None and over_residues is not None and stderr > 3 * over_residues


def test_proteins_of_unequal_length_weigh_by_their_residues_and_unscored_ones_are_no_unit() -> None:
    data = LabelledSequences(["AAA", "AA", "A"], [[0, 1, -100], [-100, -100], [2]])
    residues = scored_residues(data)
    assert residues.tolist() == [2, 0, 1]
    predicted, truth = np.array([0, 0, 2]), np.array([0, 1, 2])  # the flat scored residues, protein after protein
    value, stderr = scored_figure("token-classification", predicted, truth, 50, residues)
    assert value == pytest.approx(2 / 3)
    correct, counts = np.array([1.0, 1.0]), np.array([2.0, 1.0])  # the two scored proteins
    assert stderr == pytest.approx(bootstrap_stderr(lambda i: correct[i].sum() / counts[i].sum(), 2, 50), rel=1e-12)


@pytest.mark.parametrize(
    ("classes", "label", "guess"),
    [(["C", "E", "H"], ".CH.E", "CCHHH"), (["coil", "helix"], ". coil helix", "coil coil coil")],
)
def test_fine_tuning_predictions_are_read_protein_by_protein(tmp_path, classes, label, guess) -> None:
    path = tmp_path / "test_predictions.csv"
    path.write_text(f"id,label,residue_labels\np1,{label},{guess}\np2,{label},{guess}\n", encoding="utf-8")
    predicted, truth, residues = read_predictions(path, "token-classification", classes)
    assert residues is not None and residues.tolist() == [len(truth) // 2] * 2
    assert len(predicted) == len(truth) and "." not in truth.tolist()
