"""Fine-tuning through transformers.Trainer: every task type and mode trains, evaluates and saves Hub-ready."""

from __future__ import annotations

import csv
import functools
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, TrainingArguments

import protconv
from protconv.data.task_files import TaskDataError
from protconv.downstream.finetune import (
    LOG_FILE,
    FinetuneArguments,
    NonFiniteError,
    SequenceLengthError,
    check_lengths,
    finetune,
    protconv_log_level,
    regression_label_scale,
)
from protconv.downstream.report import _json_metrics
from protconv.downstream.task_data import TaskCollator, TaskDataset, count_truncated, load_task_splits
from protconv.downstream.trainer import _strip_prefix
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
    settings = {"save_strategy": "no", "eval_strategy": "no", **extra}
    return TrainingArguments(
        output_dir=str(output), max_steps=steps, per_device_train_batch_size=8, per_device_eval_batch_size=16,
        learning_rate=1e-3, use_cpu=True, report_to=[], disable_tqdm=True, seed=0, **settings,
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
    card = ModelCard.load(tmp_path / "model" / "README.md")
    tag = "token-classification" if task == "token-classification" else "text-classification"
    assert card.data.pipeline_tag == tag, "a regression or classification head is not fill-mask"
    figures = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert figures[("valid", key)] == pytest.approx(results["valid"][key], abs=1e-4)
    assert {r.task_type for r in card.data.eval_results} == {tag}
    assert card.data.base_model is None, "a local folder is not a Hub base model"
    assert str(tmp_path) not in card.content and str(base_folder) not in card.content


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


# ---------------------------------------------------------------- nothing non-finite is trained, scored or saved


def nan_label_file(tmp_path: Path, *bad: str) -> Path:
    """16 GB1 rows as a one-split CSV, the labels of the first replaced by ``bad`` ('nan', 'inf', ...)."""
    rows = [line.split(",")[:2] for line in (DATA / "gb1_three_vs_rest_slice.csv").read_text().splitlines()[1:17]]
    for row, value in zip(rows, bad, strict=False):
        row[1] = value
    path = tmp_path / "gb1_nan.csv"
    path.write_text("sequence,target\n" + "".join(f"{sequence},{label}\n" for sequence, label in rows))
    return path


def assert_nothing_saved(output: Path) -> None:
    assert not (output / "model").exists(), "a failed run must not write a model"
    assert not (output / "finetune_results.json").exists()
    assert not [p for p in output.iterdir() if p.name.startswith(".model.")] if output.exists() else True


def test_non_finite_labels_are_bad_rows_never_trained_on(base_folder, tmp_path, caplog) -> None:
    """One 'nan' label used to give exit 0, valid spearman=1.0 and a model of NaN tensors."""
    train_file = nan_label_file(tmp_path, "nan", "inf")
    args = FinetuneArguments(model=str(base_folder), task="regression", train_file=str(train_file),
                             validation_file=str(train_file))  # fmt: skip
    with caplog.at_level("WARNING", logger="protconv.downstream.task_data"):
        results = finetune(args, training_args(tmp_path / "out", steps=2))
    assert all(math.isfinite(value) for metrics in results.values() for value in metrics.values())
    report = caplog.text
    assert f"{train_file}:2: label 'nan' is not a finite number" in report and f"{train_file}:3:" in report
    assert "skipped 2 bad rows (train: 2, valid: 2)" in report
    summary = json.loads((tmp_path / "out" / "finetune_results.json").read_text())
    assert summary["skipped_rows"]["train"] == 2
    saved = load_file(tmp_path / "out" / "model" / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in saved.values())
    strict = FinetuneArguments(model=str(base_folder), task="regression", train_file=str(train_file),
                               on_bad_row="error")  # fmt: skip
    with pytest.raises(TaskDataError, match=r"gb1_nan\.csv:2: label 'nan' is not a finite number"):
        finetune(strict, training_args(tmp_path / "strict"))
    assert not (tmp_path / "strict" / "model").exists()


def test_label_normalisation_needs_a_finite_mean_and_std() -> None:
    assert regression_label_scale([1.0, 3.0], "f.csv") == (2.0, 1.0)
    assert regression_label_scale([5.0, 5.0], "f.csv") == (5.0, 1.0)
    for labels in ([1.0, float("nan")], [1e308, -1e308, 1e308], [float("inf"), 1.0]):
        with pytest.raises(NonFiniteError, match=r"f\.csv: the training labels have mean"):
            regression_label_scale(labels, "f.csv")


def test_non_finite_training_loss_stops_fine_tuning_and_saves_nothing(base_folder, tmp_path, monkeypatch) -> None:
    """A NaN that slips past the reader (here injected into the dataset) stops training at that very step;
    Trainer alone would hide it from the logs (logging_nan_inf_filter) and train on into NaN weights."""
    getitem = TaskDataset.__getitem__

    def poisoned(self, index):
        return {**getitem(self, index), "labels": float("nan")}

    monkeypatch.setattr(TaskDataset, "__getitem__", poisoned)
    args = FinetuneArguments(model=str(base_folder), task="regression", **TASKS["regression"])
    output = tmp_path / "out"
    with pytest.raises(NonFiniteError, match="training loss is nan at step 1"):
        finetune(args, training_args(output, steps=3, logging_steps=1))
    assert_nothing_saved(output)


def test_nan_predictions_stop_the_run_before_any_metric_or_model(base_folder, tmp_path, monkeypatch) -> None:
    forward = protconv.ConvForSequenceClassification.forward

    @functools.wraps(forward)  # Trainer reads the signature to pick the input columns
    def nan_when_evaluating(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        if not self.training:
            output.logits = output.logits * float("nan")
        return output

    monkeypatch.setattr(protconv.ConvForSequenceClassification, "forward", nan_when_evaluating)
    args = FinetuneArguments(model=str(base_folder), task="classification", **TASKS["classification"])
    with pytest.raises(NonFiniteError, match=r"valid split: predictions: .* NaN or infinite"):
        finetune(args, training_args(tmp_path / "out", steps=1))
    assert_nothing_saved(tmp_path / "out")


def test_weights_with_nan_are_never_saved(base_folder, tmp_path, monkeypatch) -> None:
    import protconv.downstream.task_model as task_model

    def corrupting_fold(model, mean, std):
        with torch.no_grad():
            model.classifier.out_proj.bias.fill_(float("inf"))

    monkeypatch.setattr(task_model, "fold_label_scale", corrupting_fold)
    args = FinetuneArguments(model=str(base_folder), task="regression", **TASKS["regression"])
    with pytest.raises(NonFiniteError, match=r"NaN/inf values in classifier\.out_proj\.bias; refusing to save"):
        finetune(args, training_args(tmp_path / "out", steps=1))
    assert_nothing_saved(tmp_path / "out")


def test_an_undefined_metric_is_reported_as_such_never_dropped() -> None:
    """Pearson of constant predictions is NaN: kept in the results, null in finetune_results.json."""
    metrics = _strip_prefix({"valid_loss": 0.5, "valid_pearson": float("nan"), "valid_runtime": 1.0}, "valid")
    assert set(metrics) == {"loss", "pearson"} and math.isnan(metrics["pearson"])
    assert _json_metrics(metrics) == {"loss": 0.5, "pearson": None}
    assert json.loads(json.dumps(_json_metrics(metrics), allow_nan=False)) == {"loss": 0.5, "pearson": None}


# ---------------------------------------------------------------- class names, long sequences, result files, logs


def test_class_names_truncation_and_result_files_of_a_per_residue_run(base_folder, tmp_path) -> None:
    """--classes CHE becomes id2label (pipelines print H/E/C); --max_length 100 cuts sequences and their labels,
    and says how many; predictions and per-class scores use the names, as protconv predict does."""
    from transformers import AutoConfig, pipeline

    args = FinetuneArguments(model=str(base_folder), task="token-classification", max_length=100,
                             **TASKS["token-classification"])  # fmt: skip
    finetune(args, training_args(tmp_path, steps=2))
    config = AutoConfig.from_pretrained(tmp_path / "model")
    assert config.id2label == {0: "C", 1: "H", 2: "E"} and config.label2id == {"C": 0, "H": 1, "E": 2}
    tagger = pipeline("token-classification", model=str(tmp_path / "model"))
    entities = tagger("MKTAYIAKQRQISFVKSHFSRQ")
    assert len(entities) == 22 and {entity["entity"] for entity in entities} <= {"C", "H", "E"}

    summary = json.loads((tmp_path / "finetune_results.json").read_text())
    splits, _ = load_task_splits(args)
    expected = {split: sum(len(s) + 2 > 100 for s in data.sequences) for split, data in splits.items()}
    assert summary["max_length"] == 100 and summary["truncated"] == expected and expected["train"] > 0
    assert summary["classes"] == ["C", "H", "E"] and set(summary["per_class"]["test"]) <= {"C", "H", "E"}
    assert (
        sum(score["support"] for score in summary["per_class"]["test"].values())
        == summary["results"]["test"]["residues"]
    )
    with open(tmp_path / "test_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "label", "residue_labels"] and len(rows) == len(splits["test"])
    for row, sequence in zip(rows, splits["test"].sequences, strict=True):
        assert len(row["residue_labels"]) == len(row["label"]) == min(len(sequence), 98)
        assert set(row["residue_labels"]) <= set("CHE") and set(row["label"]) <= set("CHE.")
    log = (tmp_path / LOG_FILE).read_text()
    assert "--max_length 100 truncates" in log and f"{expected['train']} of 24 train" in log
    assert "classes in id order (config.id2label): C, H, E" in log


def test_truncation_cuts_per_residue_labels_with_the_residues(tokenizer) -> None:
    data, _ = load_task_splits(FinetuneArguments(task="token-classification", **TASKS["token-classification"]))
    test = data["test"]
    long = max(range(len(test)), key=lambda i: len(test.sequences[i]))
    item = TaskDataset(test, tokenizer, "token-classification", max_length=12)[long]
    assert len(item["input_ids"]) == len(item["labels"]) == 12
    assert item["labels"][0] == item["labels"][-1] == -100
    assert item["labels"][1:-1] == test.labels[long][:10]
    assert count_truncated(test, 12, 2) == sum(len(s) > 10 for s in test.sequences)
    assert count_truncated(test, None, 2) == 0


def test_learned_positions_refuse_longer_sequences_unless_truncated(tmp_path, tiny_performer_config) -> None:
    """Conv and rotary Performers take any length; a Performer with learned absolute positions names the first
    sequence it cannot take, before any model is built."""
    folder = tmp_path / "absolute"
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_dict(), "position_embedding_type": "absolute",
                                         "max_position_embeddings": 200})  # fmt: skip
    protconv.PerformerForMaskedLM(config).save_pretrained(folder)
    args = FinetuneArguments(model=str(folder), task="token-classification", **TASKS["token-classification"])
    with pytest.raises(SequenceLengthError, match=r"^\S+ \(train split\): \d+ tokens \(special tokens included\) "
                                                  r"exceed this model's max_position_embeddings=200 .* "
                                                  r"Pass --max_length 200"):  # fmt: skip
        finetune(args, training_args(tmp_path / "out"))
    args.max_length = 400
    with pytest.raises(SequenceLengthError, match="--max_length 400 exceeds this model's max_position_embeddings=200"):
        finetune(args, training_args(tmp_path / "out"))
    splits, _ = load_task_splits(args)
    assert check_lengths(splits, protconv.ConvConfig(), 2, None) == {"train": 0, "valid": 0, "test": 0}
    assert check_lengths(splits, config, 2, 200)["train"] == sum(len(s) > 198 for s in splits["train"].sequences)
    assert not (tmp_path / "out" / "model").exists()


def test_finetune_from_a_dataset_with_class_names_on_the_command_line(base_folder, tmp_path, capsys, monkeypatch):
    """--dataset_name (a folder of Parquet files here) with string labels: names in id2label, the pipeline and the
    predictions file; --log_level warning keeps INFO off the console and out of the log file."""
    datasets = pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import pipeline

    from protconv.cli import main

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with open(DATA / "stability_train_slice.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = ["stable" if float(row["label"]) > 0.5 else "unstable" for row in rows]
    folder = tmp_path / "named"
    folder.mkdir()
    pq.write_table(
        pa.table({"protein": [row["seq"] for row in rows[:100]], "label": names[:100]}), folder / "train.parquet"
    )
    pq.write_table(
        pa.table({"protein": [row["seq"] for row in rows[100:]], "label": names[100:]}), folder / "validation.parquet"
    )
    out = tmp_path / "out"
    argv = ["finetune", "--model", str(base_folder), "--task", "classification", "--dataset_name", str(folder),
            "--sequence_column", "protein", "--output_dir", str(out), "--max_steps", "2", "--use_cpu",
            "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
            "--log_level", "warning"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "\nvalid loss=" in captured.out and "INFO" not in captured.err
    model = out / "model"
    assert json.loads((model / "config.json").read_text())["id2label"] == {"0": "stable", "1": "unstable"}
    predicted = pipeline("text-classification", model=str(model))(["MKTAYIAKQRQISFVKSHFSRQ"])
    assert predicted[0]["label"] in {"stable", "unstable"}
    with open(out / "valid_predictions.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["id", "label", "predicted_label", "probability"] and len(table) == len(rows) - 100
    assert table[0]["id"] == f"{folder} (validation) row 0" and table[0]["label"] == names[100]
    assert {row["predicted_label"] for row in table} <= {"stable", "unstable"}
    summary = json.loads((out / "finetune_results.json").read_text())
    assert summary["classes"] == ["stable", "unstable"] and summary["truncated"] == {"train": 0, "valid": 0}
    assert summary["max_length"] is None
    assert "INFO" not in (out / LOG_FILE).read_text()


def test_info_is_logged_to_the_console_and_the_run_log_by_default(base_folder, tmp_path, capsys) -> None:
    args = FinetuneArguments(model=str(base_folder), task="regression", **TASKS["regression"])
    finetune(args, training_args(tmp_path, steps=1))
    err = capsys.readouterr().err
    log = (tmp_path / LOG_FILE).read_text()
    for text in (err, log):
        assert "INFO protconv.downstream.finetune: train: 120 sequences" in text
        assert "INFO protconv.downstream.finetune: valid: loss=" in text
    assert protconv_log_level("passive") == "info" and protconv_log_level("detail") == "debug"


def test_a_refused_run_leaves_no_output_folder(base_folder, tmp_path) -> None:
    """Input errors stop before the run log is opened: nothing is created (Trainer's default output_dir would
    otherwise gather log files in the working directory)."""
    args = FinetuneArguments(model=str(base_folder), task="regression", train_file=str(tmp_path / "none.csv"))
    with pytest.raises(FileNotFoundError):
        finetune(args, training_args(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_a_fixed_seed_fixes_the_run(base_folder, tmp_path, mode) -> None:
    """A new head (and LoRA's adapters) are drawn after the seed: the same command twice gives the same model."""
    args = FinetuneArguments(model=str(base_folder), task="classification", mode=mode, **TASKS["classification"])
    runs = []
    for name in ("first", "second"):
        torch.manual_seed(len(name))  # whatever state the process happens to be in must not matter
        runs.append(finetune(args, training_args(tmp_path / name, steps=2)))
    assert runs[0] == runs[1]
    first = load_file(tmp_path / "first" / "model" / "model.safetensors")
    second = load_file(tmp_path / "second" / "model" / "model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_finetune_draws_its_curves_beside_the_results(base_folder, tmp_path) -> None:
    args = FinetuneArguments(model=str(base_folder), task="regression", **TASKS["regression"])
    finetune(args, training_args(tmp_path, steps=2, logging_steps=1, eval_strategy="steps", eval_steps=1))
    from PIL import Image

    with Image.open(tmp_path / "curves.png") as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_the_output_folder_is_locked_and_may_not_be_the_model(base_folder, tmp_path) -> None:
    from protconv.file_guards import OutputDirInUseError, OutputDirLock, OutputIsInputError

    args = FinetuneArguments(model=str(base_folder), task="regression", **TASKS["regression"])
    weights = (base_folder / "model.safetensors").read_bytes()
    with pytest.raises(OutputIsInputError, match="would overwrite the input"):
        finetune(args, training_args(base_folder))
    assert (base_folder / "model.safetensors").read_bytes() == weights
    with OutputDirLock(tmp_path / "out"), pytest.raises(OutputDirInUseError, match="in use by another run"):
        finetune(args, training_args(tmp_path / "out"))
    assert not (tmp_path / "out" / "finetune_results.json").exists()
