"""Fine-tuning checkpoints are complete or absent; ``--resume_from_checkpoint true`` takes the newest complete one;
resuming unpickles nothing."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainingArguments

import protconv
from protconv.downstream.checkpoints import MARKER_FILE, STAGING_FOLDER, FinetuneCheckpointError
from protconv.downstream.finetune import FinetuneArguments, finetune
from protconv.staging import content_digest
from tests.helpers import DATA

ARGS = {"task": "regression", "train_file": str(DATA / "gb1_three_vs_rest_slice.csv")}


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    config = protconv.ConvConfig(hidden_size=16, intermediate_size=8, num_hidden_layers=2, max_dilation=2)
    protconv.ConvForMaskedLM(config).save_pretrained(folder)
    protconv.build_tokenizer().save_pretrained(folder)
    return folder


def saving_args(output: Path, resume: str | None = None, save_total_limit: int = 1) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output), max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=save_total_limit,
        per_device_train_batch_size=8, learning_rate=1e-3, use_cpu=True, report_to=[], eval_strategy="no",
        disable_tqdm=True, seed=0, resume_from_checkpoint=resume,
    )  # fmt: skip


def weights(output: Path) -> dict[str, torch.Tensor]:
    return load_file(output / "model" / "model.safetensors")


def test_a_save_cut_short_leaves_no_checkpoint_under_its_name_and_true_resumes(base_folder, tmp_path, monkeypatch):
    args = FinetuneArguments(model=str(base_folder), **ARGS)
    finetune(args, saving_args(tmp_path / "full"))
    assert sorted(p.name for p in (tmp_path / "full").glob("checkpoint-*")) == ["checkpoint-4"], "rotation kept one"
    assert (tmp_path / "full" / "checkpoint-4" / MARKER_FILE).is_file()
    assert not (tmp_path / "full" / STAGING_FOLDER).exists()

    original = Trainer._save_rng_state

    def killed_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise KeyboardInterrupt("killed mid-save")  # as a SIGKILL would: the files so far stay on disk
        original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", killed_at_step_4)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        finetune(args, saving_args(cut))
    assert not (cut / "checkpoint-4").exists(), "an incomplete checkpoint must not appear under its final name"
    assert (cut / "checkpoint-2" / MARKER_FILE).is_file()
    monkeypatch.setattr(Trainer, "_save_rng_state", original)

    finetune(args, saving_args(cut, resume="true"))
    assert not (cut / STAGING_FOLDER).exists(), "the killed run's staging folder is removed"
    assert sorted(p.name for p in cut.glob("checkpoint-*")) == ["checkpoint-4"]
    for name, tensor in weights(tmp_path / "full").items():
        assert torch.equal(tensor, weights(cut)[name]), name


def test_incomplete_checkpoints_are_skipped_and_named(base_folder, tmp_path, caplog) -> None:
    args = FinetuneArguments(model=str(base_folder), **ARGS)
    output = tmp_path / "run"
    finetune(args, saving_args(output))
    broken = output / "checkpoint-6"  # what Trainer's in-place save leaves when killed: weights, no state
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"")
    with pytest.raises(FinetuneCheckpointError, match="checkpoint-6: cannot resume from it, it has no readable"):
        finetune(args, saving_args(output, resume=str(broken)))
    truncated = output / "checkpoint-4" / "optimizer.pt"
    truncated.write_bytes(truncated.read_bytes()[:100])
    caplog.set_level(logging.INFO, logger="protconv")
    finetune(args, saving_args(output, resume="true"))
    assert "skipping" in caplog.text and "checkpoint-6" in caplog.text
    assert "optimizer.pt is missing or not" in caplog.text and "starting from step 0" in caplog.text


def test_flipped_bytes_in_the_newest_weights_fall_back_to_the_older_checkpoint(base_folder, tmp_path, caplog) -> None:
    args = FinetuneArguments(model=str(base_folder), **ARGS)
    output = tmp_path / "run"
    finetune(args, saving_args(output, save_total_limit=2))
    finished = weights(output)
    damaged = output / "checkpoint-4" / "model.safetensors"
    data = bytearray(damaged.read_bytes())
    data[-64:] = bytes(byte ^ 0xFF for byte in data[-64:])  # inside the last tensor: size and header intact
    damaged.write_bytes(bytes(data))
    assert "sha256" in json.loads((output / "checkpoint-2" / MARKER_FILE).read_text())
    caplog.set_level(logging.INFO, logger="protconv")
    finetune(args, saving_args(output, resume="true", save_total_limit=2))
    assert "skipping" in caplog.text and "model.safetensors does not match the SHA-256" in caplog.text
    assert "resuming from" in caplog.text and "checkpoint-2, the newest complete" in caplog.text
    for name, tensor in finished.items():  # steps 3-4 redone from checkpoint-2: the same weights, bit for bit
        assert torch.equal(tensor, weights(output)[name]), name


class _Payload:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "ran"))


def test_resuming_unpickles_no_code(base_folder, tmp_path) -> None:
    args = FinetuneArguments(model=str(base_folder), **ARGS)
    output = tmp_path / "run"
    finetune(args, saving_args(output))
    checkpoint = output / "checkpoint-4"
    evidence = tmp_path / "executed.txt"
    for name in ("rng_state.pth", "scheduler.pt"):
        (checkpoint / name).write_bytes(pickle.dumps({"python": _Payload(evidence)}))
    marker = json.loads((checkpoint / MARKER_FILE).read_text())  # an attacker can rewrite sizes and digests too
    for name in ("rng_state.pth", "scheduler.pt"):
        marker["files"][name] = (checkpoint / name).stat().st_size
        marker["sha256"][name] = content_digest(checkpoint / name)
    (checkpoint / MARKER_FILE).write_text(json.dumps(marker))
    with pytest.raises(pickle.UnpicklingError):
        finetune(args, saving_args(output, resume="true"))
    assert not evidence.exists()
