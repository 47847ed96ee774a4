"""A real two-process run (DDP over gloo on CPU) through `accelerate launch`: train, checkpoint, resume.

`accelerate launch --cpu --num_processes 2` would start ONE process in accelerate 1.x; ACCELERATE_USE_CPU with
--multi_gpu is what starts two (DESIGN.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
TINY = "hidden_size=32,intermediate_size=16,num_hidden_layers=4,max_dilation=4"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        str(ROOT / "examples" / "pretrain.py"),
        "--model", "protconv_conv", "--config_overrides", TINY,
        "--train_files", str(ROOT / "tests" / "data" / "some_proteins.fasta"),
        "--validation_fraction", "0.2", "--max_length", "128", "--max_tokens_per_batch", "512",
        "--max_steps", "4", "--save_steps", "2", "--eval_steps", "2", "--logging_steps", "1",
        "--gradient_accumulation_steps", "2", "--disable_tqdm", "--output_dir", str(output_dir), *extra,
    ]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_processes_train_checkpoint_and_resume_exactly(tmp_path) -> None:
    straight = tmp_path / "straight"
    launch(straight)
    split = tmp_path / "split"
    launch(split, "--stop_after_steps", "2")
    checkpoint = split / "checkpoints" / "checkpoint-00000002"
    names = {p.name for p in checkpoint.iterdir()}
    assert {"rng_state_0.safetensors", "rng_state_1.safetensors", "trainer_state.json"} <= names
    assert all(name.endswith((".safetensors", ".json")) for name in names), names  # nothing that unpickles
    assert not (split / "model").exists()
    resumed = launch(split, "--resume")
    assert "resumed from" in resumed.stdout + resumed.stderr
    expected = load_file(straight / "model" / "model.safetensors")
    actual = load_file(split / "model" / "model.safetensors")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
