"""Supervised tasks in ``mode: lora`` and ``full``: fine-tuned by protconv finetune's run on a tiny model, one row
per (task, mode) beside the probe and the baselines, the fine-tuned folder reused by a rerun; bad modes and
settings refused before any model work, naming the suite file and the task."""

from __future__ import annotations

import json
import math

import pytest

import protconv
from protconv.cli import main
from protconv.downstream import finetune as downstream_finetune
from protconv.evaluation import EvaluateOptions, SuiteError, evaluate, finetuned, read_suite
from protconv.hub import save_hub_folder
from tests.helpers import DATA

REGRESSION = f"""
  kind: regression
  train_file: {DATA / "stability_train_slice.csv"}
  test_file: {DATA / "stability_valid_slice.csv"}
  max_train_samples: 48
  cnn_epochs: 1
"""
PER_RESIDUE = f"""- name: ss3
  kind: token-classification
  train_file: {DATA / "ss_sequences_slice.fasta"}
  labels_file: {DATA / "ss_labels_slice.fasta"}
  mask_file: {DATA / "ss_mask_slice.fasta"}
  baselines: cnn
  cnn_epochs: 1
  mode: lora
  finetune: {{per_device_train_batch_size: 8, lora_r: 2}}
"""


@pytest.fixture
def conv(tmp_path, tiny_conv_config) -> str:
    network = protconv.ConvForMaskedLM(tiny_conv_config).eval()
    return str(save_hub_folder(network, protconv.build_tokenizer(), tmp_path / "conv"))


def test_lora_and_full_rows_beside_the_probe_and_a_rerun_reuses_the_fine_tuned_folder(
    tmp_path, conv, monkeypatch
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "finetune: {num_train_epochs: 1, learning_rate: 1e-3, per_device_train_batch_size: 16}\ntasks:\n- name: st"
        + REGRESSION
        + "  mode: [probe, lora, full]\n"
        + PER_RESIDUE,
        encoding="utf-8",
    )
    tasks = read_suite(suite)
    assert [(t.name, t.mode) for t in tasks] == [("st", "probe"), ("st-lora", "lora"), ("st-full", "full"),
                                                 ("ss3-lora", "lora")]  # fmt: skip
    assert tasks[1].finetune == {"num_train_epochs": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 16}
    assert tasks[3].finetune == {**tasks[1].finetune, "per_device_train_batch_size": 8, "lora_r": 2}
    options = EvaluateOptions(tmp_path / "out", bootstrap=10)
    result = evaluate([conv], tasks, options)
    rows = {(r.task, r.model): r for r in result.records}
    for name in ("st", "st-lora", "st-full"):
        assert math.isfinite(rows[name, conv].value) and rows[name, conv].stderr is not None
        assert (name, "cnn-scratch") in rows and (name, "onehot-linear") in rows  # baselines beside every mode
    assert rows["st-lora", conv].value != rows["st", conv].value
    assert rows["st-full", conv].value != rows["st", conv].value
    assert rows["st-lora", "cnn-scratch"].value == rows["st", "cnn-scratch"].value  # trained once, one figure
    q3 = rows["ss3-lora", conv]  # read back protein by protein from the run's per-residue predictions
    assert q3.metric == "q3" and 0 <= q3.value <= 1 and q3.stderr is not None and q3.stderr > 0
    folder = finetuned.run_folder(tasks[1], conv, options)
    assert folder.parent == tmp_path / "out" / "finetune" / "st-lora"
    assert (folder / "model" / "config.json").is_file() and not list(folder.glob("checkpoint-*"))
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert all(f"| {name} |" in table for name in ("st", "st-lora", "st-full"))
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert {r["task"] for r in saved["results"] if r["model"] == conv} == {"st", "st-lora", "st-full", "ss3-lora"}

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(downstream_finetune, "finetune", no_training)
    for cached in (tmp_path / "out" / "cache").glob("*.json"):  # the model's rows go (the baselines' stay)
        if any(row["model"] == conv for row in json.loads(cached.read_text(encoding="utf-8"))):
            cached.unlink()
    again = evaluate([conv], tasks, options)  # rows recomputed from the fine-tuned folders, nothing trained
    assert again.computed == 4 and again.records == result.records
    asked: list = []

    def resumed(arguments, training_arguments):
        asked.append(training_arguments.resume_from_checkpoint)
        raise AssertionError("trained again")

    monkeypatch.setattr(downstream_finetune, "finetune", resumed)
    folder = finetuned.run_folder(tasks[2], conv, options)
    stamp = json.loads((folder / finetuned.STAMP).read_text(encoding="utf-8"))
    (folder / finetuned.STAMP).write_text(json.dumps({**stamp, "finished": False}), encoding="utf-8")  # killed
    for cached in (tmp_path / "out" / "cache").glob("*.json"):
        if any(row["task"] == "st-full" and row["model"] == conv for row in json.loads(cached.read_text())):
            cached.unlink()
    with pytest.raises(AssertionError, match="trained again"):
        evaluate([conv], tasks, options)
    assert asked == ["true"] and (folder / "model").is_dir()  # resumed where it was, not wiped
    with pytest.raises(AssertionError, match="trained again"):  # --overwrite fine-tunes anew
        evaluate([conv], tasks[1:2], EvaluateOptions(tmp_path / "out", overwrite=True, bootstrap=10))
    assert asked == ["true", None]


@pytest.mark.parametrize(
    ("task", "suite_settings", "message"),
    [
        ("  mode: fast\n", "", r"task 'st': mode must be 'probe', 'full' or 'lora', got 'fast'"),
        ("  mode: [lora, lora]\n", "", "at most once"),
        (
            "  mode: full\n  finetune: {lora_r: 4}\n",
            "",
            r"task 'st': lora_r are LoRA settings; this task's mode is",
        ),
        ("  finetune: {num_train_epochs: 1}\n", "", r"task 'st': finetune settings num_train_epochs are for mode full"),
        ("  mode: lora\n  finetune: {epochs: 1}\n", "", r"task 'st': unknown finetune settings epochs"),
        ("  mode: lora\n  finetune: {lora_r: 2.5}\n", "", r"task 'st': finetune setting lora_r must be int, got 2.5"),
        ("  mode: lora\n  finetune: {learning_rate: 0}\n", "", "learning_rate must be positive, got 0"),
        ("  mode: full\n", "{lora_alpha: 8}", r"suite 'finetune' settings lora_alpha are LoRA settings; no task"),
        ("  mode: full\n  finetune: {seed: 3}\n", "", "seed 3 with max_train_samples would train on another subsample"),
        ("  mode: lora\n- name: st-lora" + REGRESSION, "", r"task 'st-lora': two tasks have this name"),
    ],
    ids=["fast", "twice", "lora-for-full", "probe-settings", "unknown", "type", "range", "suite-lora", "seed", "names"],
)
def test_bad_modes_and_settings_name_the_suite_and_task(tmp_path, task, suite_settings, message) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(f"finetune: {suite_settings or '{}'}\ntasks:\n- name: st{REGRESSION}{task}", encoding="utf-8")
    with pytest.raises(SuiteError, match=rf"s\.yaml: .*{message}"):
        read_suite(suite)


def test_a_bad_mode_from_the_cli_is_one_line_before_any_model_is_opened(tmp_path, capsys) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(f"- name: st{REGRESSION}  mode: fast\n", encoding="utf-8")
    code = main(["evaluate", str(tmp_path / "no-model"), "--suite", str(suite), "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "task 'st': mode must be" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
