"""A regression run reports its loss in the assay's units beside ``mse`` (the z-scored figure as ``loss_z``), and a
CPU run builds its DataLoaders without pinned memory (torch warns about pinning without an accelerator)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

import protconv
from protconv.downstream.finetune import FinetuneArguments, finetune
from protconv.downstream.trainer import loss_in_assay_units
from tests.helpers import DATA


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory) -> tuple[Path, dict, list[warnings.WarningMessage]]:
    """Two steps of a tiny regression run, without ``use_cpu``: on a machine without CUDA, as a user runs it."""
    root = tmp_path_factory.mktemp("units")
    config = protconv.ConvConfig(hidden_size=16, intermediate_size=8, num_hidden_layers=2, max_dilation=2)
    protconv.ConvForMaskedLM(config).save_pretrained(root / "base")
    protconv.build_tokenizer().save_pretrained(root / "base")
    args = FinetuneArguments(
        model=str(root / "base"), task="regression", train_file=str(DATA / "gb1_three_vs_rest_slice.csv")
    )
    training = TrainingArguments(
        output_dir=str(root / "run"), max_steps=2, per_device_train_batch_size=8, per_device_eval_batch_size=16,
        report_to=[], disable_tqdm=True, save_strategy="no", eval_strategy="no", seed=0,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = finetune(args, training)
    return root / "run", results, caught


def test_the_regression_loss_is_in_assay_units_beside_mse_and_z_units_are_labelled(regression_run) -> None:
    output, results, _ = regression_run
    summary = json.loads((output / "finetune_results.json").read_text())["results"]
    ratios = []
    for split in ("valid", "test"):
        metrics = results[split]
        assert metrics["loss"] == pytest.approx(metrics["mse"], rel=1e-4)
        assert metrics["loss_z"] == pytest.approx(summary[split]["loss_z"])
        ratios.append(metrics["loss"] / metrics["loss_z"])
    assert ratios[0] == pytest.approx(ratios[1]) and ratios[0] != pytest.approx(1.0), "one scale: the train std**2"
    card = (output / "model" / "README.md").read_text()
    assert "loss_z" not in card and "type: mse" in card


def test_a_cpu_run_does_not_pin_memory(regression_run) -> None:
    if torch.cuda.is_available():
        pytest.skip("pinned memory is right on a CUDA machine")
    _, _, caught = regression_run
    assert not [w for w in caught if "pin_memory" in str(w.message)]


def test_unscaled_targets_keep_their_loss() -> None:
    assert loss_in_assay_units({"valid_loss": 0.5}, "valid", (0.0, 1.0)) == {}
    assert loss_in_assay_units({"valid_loss": 0.5}, "valid", (3.0, 2.0)) == {"valid_loss": 2.0, "valid_loss_z": 0.5}
