"""Supervised baselines: exact ridge algebra, one-hot features, and each baseline on real task slices."""

from __future__ import annotations

import numpy as np
import pytest

from protconv.data.task_files import read_csv_task, read_residue_task
from protconv.downstream.baselines import cnn_baseline, linear_baseline, one_hot_flat, ridge_fit
from tests.helpers import DATA


def test_ridge_primal_and_dual_agree_with_normal_equations() -> None:
    rng = np.random.default_rng(0)
    for n, d in [(40, 5), (5, 40)]:  # primal and dual branches
        x, y = rng.normal(size=(n, d)), rng.normal(size=n)
        weights, bias = ridge_fit(x, y, alpha=2.0)
        xc = x - x.mean(0)
        expected = np.linalg.solve(xc.T @ xc + 2.0 * np.eye(d), xc.T @ (y - y.mean()))
        np.testing.assert_allclose(weights, expected, atol=1e-10)
        assert bias == pytest.approx(y.mean() - x.mean(0) @ expected)


def test_one_hot_layout_pads_and_truncates() -> None:
    features = one_hot_flat(["AC", "C"], length=3).reshape(2, 3, -1)
    assert features.sum(axis=(1, 2)).tolist() == [2.0, 1.0]
    assert features[0, 0].argmax() == 0 and features[0, 1].argmax() == 1 and features[1, 2].sum() == 0


@pytest.fixture(scope="module")
def gb1_splits():
    path = DATA / "gb1_three_vs_rest_slice.csv"
    return {split: read_csv_task(path, split=split) for split in ("train", "valid", "test")}


def test_linear_baseline_learns_gb1_fitness(gb1_splits) -> None:
    result = linear_baseline("regression", gb1_splits)
    assert set(result.metrics) == {"valid", "test"}
    assert result.metrics["test"]["spearman"] > 0.2, result.metrics  # 120 training variants only


def test_cnn_and_linear_baselines_run_on_every_task_type(gb1_splits) -> None:
    ss = {
        split: read_residue_task(*(DATA / f"ss_{kind}_slice.fasta" for kind in ("sequences", "labels", "mask")),
                                 classes="CHE", split=split)[0]
        for split in ("train", "valid", "test")
    }  # fmt: skip
    homology = {"train": read_csv_task(DATA / "remote_homology_slice.csv", label_kind="int")}
    homology["valid"] = homology["train"]
    for task, splits in [("regression", gb1_splits), ("token-classification", ss), ("classification", homology)]:
        result = cnn_baseline(task, splits, epochs=2, batch_size=16, channels=16)
        assert "valid" in result.metrics and result.chosen.startswith("epoch=")
    ss_linear = linear_baseline("token-classification", ss, alphas=(1.0,))
    assert ss_linear.metrics["test"]["accuracy"] > 0.4  # helix/strand/coil from a 15-residue window


def test_baseline_command_writes_results(tmp_path, capsys) -> None:
    import json

    from protconv.cli import main

    out = tmp_path / "baselines.json"
    argv = ["baseline", "--task", "regression", "--train_file", str(DATA / "gb1_three_vs_rest_slice.csv"),
            "--baselines", "linear", "--output_file", str(out), "--disable_tqdm"]  # fmt: skip
    assert main(argv) == 0
    assert "linear (alpha=" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["linear"]["metrics"]) == {"valid", "test"}


class _Terminal:
    """A stand-in for an interactive stderr: tqdm draws on it."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        return None


def test_baselines_show_progress_on_a_terminal_only(gb1_splits, monkeypatch) -> None:
    import sys

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    cnn_baseline("regression", gb1_splits, epochs=2, batch_size=64, channels=8, progress=True)
    linear_baseline("regression", gb1_splits, alphas=(1.0, 10.0), progress=True)
    assert "cnn regression:" in terminal.text and "/4 [" in terminal.text  # 2 epochs of 2 batches
    assert "linear regression:" in terminal.text and "/2 [" in terminal.text  # 2 L2 strengths
    terminal.text = ""
    cnn_baseline("regression", gb1_splits, epochs=1, channels=8, progress=False)
    assert terminal.text == "", "--disable_tqdm"
    monkeypatch.setattr(terminal, "isatty", lambda: False)
    cnn_baseline("regression", gb1_splits, epochs=1, channels=8, progress=True)
    assert terminal.text == "", "no bar in a log file or pipe"


def test_a_fixed_seed_fixes_the_baseline_command(tmp_path) -> None:
    """The split, the CNN's initialisation and its batch order all come from --seed, not from the process state."""
    import json

    import torch

    from protconv.cli import main

    payloads = []
    for run in range(2):
        torch.manual_seed(run)
        out = tmp_path / f"run{run}.json"
        argv = ["baseline", "--task", "regression", "--train_file", str(DATA / "gb1_three_vs_rest_slice.csv"),
                "--baselines", "linear,cnn", "--cnn_epochs", "1", "--cnn_channels", "8", "--seed", "3",
                "--output_file", str(out), "--disable_tqdm"]  # fmt: skip
        assert main(argv) == 0
        payloads.append({name: result["metrics"] for name, result in json.loads(out.read_text()).items()})
    assert payloads[0] == payloads[1]
