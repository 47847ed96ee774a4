"""Fine-tuning through transformers.Trainer: every task type and mode trains, evaluates and saves Hub-ready."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, TrainingArguments

import protconv
from protconv.downstream.finetune import FinetuneArguments, finetune
from protconv.downstream.task_data import TaskCollator, TaskDataset, load_task_splits
from tests.helpers import DATA

TASKS = {
    "regression": {"train_file": str(DATA / "gb1_three_vs_rest_slice.csv")},
    "classification": {
        "train_file": str(DATA / "remote_homology_slice.csv"),
        "validation_file": str(DATA / "remote_homology_slice.csv"),
    },
    "token-classification": {
        "train_file": str(DATA / "ss_sequences_slice.fasta"),
        "labels_file": str(DATA / "ss_labels_slice.fasta"),
        "mask_file": str(DATA / "ss_mask_slice.fasta"),
        "classes": "CHE",
    },
}


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory) -> Path:
    """A tiny pretrained-style folder (MLM weights + tokenizer) to fine-tune from."""
    folder = tmp_path_factory.mktemp("base")
    config = protconv.ConvConfig(hidden_size=32, intermediate_size=16, num_hidden_layers=4, max_dilation=4)
    protconv.ConvForMaskedLM(config).save_pretrained(folder)
    protconv.build_tokenizer().save_pretrained(folder)
    return folder


def training_args(output: Path, steps: int = 3, **extra) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output), max_steps=steps, per_device_train_batch_size=8, per_device_eval_batch_size=16,
        learning_rate=1e-3, use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no",
        disable_tqdm=True, seed=0, **extra,
    )  # fmt: skip


@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_task_trains_evaluates_and_saves(base_folder, tmp_path, task) -> None:
    args = FinetuneArguments(model=str(base_folder), task=task, **TASKS[task])
    results = finetune(args, training_args(tmp_path))
    assert "valid" in results
    key = {"regression": "spearman", "classification": "accuracy", "token-classification": "accuracy"}[task]
    assert -1.0 <= results["valid"][key] <= 1.0
    summary = json.loads((tmp_path / "finetune_results.json").read_text())
    assert summary["results"]["valid"][key] == results["valid"][key]
    auto = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    reloaded = auto.from_pretrained(tmp_path / "model")
    assert isinstance(reloaded, protconv.modeling.ConvPreTrainedModel)
    assert (tmp_path / "model" / "README.md").is_file()


def test_regression_model_predicts_in_assay_units(base_folder, tmp_path) -> None:
    """Training uses z-scored targets; the saved head has the scale folded back in."""
    args = FinetuneArguments(model=str(base_folder), task="regression", **TASKS["regression"])
    results = finetune(args, training_args(tmp_path, steps=5))
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    splits, _ = load_task_splits(args)
    tokenizer = protconv.build_tokenizer()
    valid = splits["valid"]
    batch = TaskCollator(tokenizer, "regression")(
        [TaskDataset(valid, tokenizer, "regression")[i] for i in range(len(valid))]
    )
    with torch.no_grad():
        predictions = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)
    mse = torch.mean((predictions - batch["labels"]) ** 2).item()
    assert mse == pytest.approx(results["valid"]["mse"], rel=1e-4)


def test_frozen_mode_changes_only_the_head(base_folder, tmp_path) -> None:
    args = FinetuneArguments(model=str(base_folder), task="classification", mode="frozen", **TASKS["classification"])
    finetune(args, training_args(tmp_path))
    tuned = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    original = protconv.ConvModel.from_pretrained(base_folder)
    for (name, before), after in zip(original.state_dict().items(), tuned.conv.state_dict().values(), strict=True):
        assert torch.equal(before, after), name


def test_lora_adapters_save_load_and_merge(base_folder, tmp_path) -> None:
    from peft import PeftModel

    args = FinetuneArguments(model=str(base_folder), task="regression", mode="lora", normalize_labels=False,
                             **TASKS["regression"])  # fmt: skip
    finetune(args, training_args(tmp_path, steps=5))
    adapter = tmp_path / "lora_adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    base = AutoModelForSequenceClassification.from_pretrained(base_folder, num_labels=1)
    with_adapter = PeftModel.from_pretrained(base, adapter).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    batch = protconv.build_tokenizer()(["MKTAYIAKQRQISFVK", "MQYKLILNGKTLKG"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(with_adapter(**batch).logits, merged(**batch).logits, rtol=1e-4, atol=1e-5)
        untouched = AutoModelForSequenceClassification.from_pretrained(base_folder, num_labels=1).eval()
        assert not torch.allclose(untouched.conv(**batch).last_hidden_state, merged.conv(**batch).last_hidden_state)


def trainer_features(output: Path, resume: str | None = None) -> TrainingArguments:
    """Accumulation, activation checkpointing, periodic eval/save and best-model selection, all at once."""
    return TrainingArguments(
        output_dir=str(output), max_steps=6, per_device_train_batch_size=4, gradient_accumulation_steps=2,
        activation_checkpointing=True, eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
        load_best_model_at_end=True, metric_for_best_model="spearman", learning_rate=1e-3, use_cpu=True,
        report_to=[], disable_tqdm=True, seed=0, resume_from_checkpoint=resume,
    )  # fmt: skip


def test_trainer_features_and_exact_resume(base_folder, tmp_path, monkeypatch) -> None:
    enabled = []
    original = protconv.modeling.ConvPreTrainedModel.activation_checkpointing_enable
    monkeypatch.setattr(
        protconv.modeling.ConvPreTrainedModel,
        "activation_checkpointing_enable",
        lambda self, *a, **k: enabled.append(True) or original(self, *a, **k),
    )
    args = FinetuneArguments(model=str(base_folder), task="regression", **TASKS["regression"])
    full = finetune(args, trainer_features(tmp_path / "full"))
    assert enabled, "TrainingArguments(activation_checkpointing=True) must reach the model"
    state = json.loads((tmp_path / "full" / "checkpoint-6" / "trainer_state.json").read_text())
    scores = {entry["step"]: entry["eval_spearman"] for entry in state["log_history"] if "eval_spearman" in entry}
    assert sorted(scores) == [3, 6]
    best_step = max(scores, key=scores.get)
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    assert math.isclose(full["valid"]["spearman"], scores[best_step], rel_tol=1e-6), "the best model is the one kept"

    # Resume from a differently initialised base folder: only weights restored from checkpoint-3 can match.
    other = tmp_path / "other_base"
    torch.manual_seed(1)
    protconv.ConvForMaskedLM(protconv.ConvConfig.from_pretrained(base_folder)).save_pretrained(other)
    protconv.build_tokenizer().save_pretrained(other)
    shutil.copytree(tmp_path / "full" / "checkpoint-3", tmp_path / "resumed" / "checkpoint-3")
    resumed_args = FinetuneArguments(model=str(other), task="regression", **TASKS["regression"])
    checkpoint = str(tmp_path / "resumed" / "checkpoint-3")
    resumed = finetune(resumed_args, trainer_features(tmp_path / "resumed", checkpoint))
    assert resumed == full
    for name in ("full", "resumed"):
        assert (tmp_path / name / "model" / "model.safetensors").is_file()
    first = load_file(tmp_path / "full" / "model" / "model.safetensors")
    second = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_bf16_mixed_precision_on_cpu(base_folder, tmp_path) -> None:
    args = FinetuneArguments(model=str(base_folder), task="token-classification", **TASKS["token-classification"])
    results = finetune(args, training_args(tmp_path, bf16=True))
    assert math.isfinite(results["valid"]["loss"]) and 0.0 <= results["valid"]["accuracy"] <= 1.0
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert all(tensor.dtype == torch.float32 for tensor in saved.values()), "autocast must not store bf16 weights"


def test_finetune_command_line(base_folder, tmp_path, capsys) -> None:
    from protconv.cli import main

    argv = ["finetune", "--model", str(base_folder), "--task", "regression", "--train_file",
            TASKS["regression"]["train_file"], "--output_dir", str(tmp_path), "--max_steps", "2", "--use_cpu",
            "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "\nvalid loss=" in out and "spearman=" in out
    assert (tmp_path / "model" / "model.safetensors").is_file()
