"""SIGKILL pretraining at random moments, inside checkpoint saves and inside the export; resume until it finishes;
compare the final weights with an uninterrupted run.

    .venv/bin/python benchmarks/kill_resume_sweep.py --trials 6 --kills_per_trial 4

Each trial starts a tiny Conv run (12 steps, a checkpoint every 2) in a fresh folder and kills it ``kills_per_trial``
times with SIGKILL, then lets it finish. A kill is aimed at one of three moments, in turn:

- ``random``: a uniform delay after the process started;
- ``save``: while a checkpoint is being written (a ``checkpoints/.tmp-*`` folder exists);
- ``export``: while the final Hub folder is being written (a ``.model.*`` staging folder exists).

To make the last two windows hit reliably, the child process slows every safetensors write by 0.3 s (a monkeypatch in
the child only: the code under test is unchanged). After each kill the next start uses ``--resume``, also when no
checkpoint is complete yet (a kill before the first save: the run then starts from step 0 in the same folder).

Counted per trial: final weights bit-identical to the uninterrupted run, resumed starts, leftovers (``.tmp-`` /
``.model.`` folders, staging folders in the data cache), the exported folder's permissions, duplicated steps in
metrics.jsonl, and any start that failed with an error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
TINY = "hidden_size=32,intermediate_size=16,num_hidden_layers=4,max_dilation=4"
CHILD = """
import sys, time
import safetensors.torch as st
import transformers.modeling_utils as mu
import protconv.pretraining.checkpoints as checkpoints
def slow(save):
    def wrapped(*args, **kwargs):
        save(*args, **kwargs)
        time.sleep(0.3)
    return wrapped
checkpoints.save_file = slow(checkpoints.save_file)
mu.safe_save_file = slow(mu.safe_save_file)
from protconv.cli import main
sys.exit(main(["pretrain", *sys.argv[1:]]))
"""


def run_arguments(output_dir: Path) -> list[str]:
    return [
        "--model", "protconv_conv", "--config_overrides", TINY,
        "--train_files", str(ROOT / "tests" / "data" / "some_proteins.fasta"),
        "--validation_fraction", "0.2", "--max_length", "128", "--max_tokens_per_batch", "512",
        "--max_steps", "12", "--save_steps", "2", "--eval_steps", "4", "--logging_steps", "1",
        "--warmup_steps", "2", "--learning_rate", "3e-3", "--gradient_accumulation_steps", "2",
        "--save_total_limit", "2", "--disable_tqdm", "--output_dir", str(output_dir),
    ]  # fmt: skip


def start(output_dir: Path, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *run_arguments(output_dir), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def in_window(output_dir: Path, target: str) -> bool:
    if target == "save":
        return any((output_dir / "checkpoints").glob(".tmp-*"))
    return any(output_dir.glob(".model.*"))


def kill_at(
    process: subprocess.Popen,
    output_dir: Path,
    target: str,
    rng: random.Random,
    delay: tuple[float, float] = (4.0, 14.0),
    window: Callable[[Path, str], bool] = in_window,
    inside: float = 0.0,
) -> str:
    """Kill ``process`` at the ``target`` moment; returns what happened ("killed (save)", "finished"...).

    ``random``: after a uniform delay in ``delay`` seconds; any other target: once ``window(output_dir, target)``
    holds, after a further uniform 0-``inside`` s (somewhere inside the save, not only at its first file)."""
    deadline = time.monotonic() + (rng.uniform(*delay) if target == "random" else 120.0)
    while process.poll() is None:
        if (target == "random" and time.monotonic() >= deadline) or (target != "random" and window(output_dir, target)):
            time.sleep(rng.uniform(0.0, inside) if target != "random" else 0.0)
            process.send_signal(signal.SIGKILL)
            process.wait()
            return f"killed ({target})"
        if time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    process.wait()
    return "finished" if process.returncode == 0 else f"exited {process.returncode}"


def next_start_flags(output_dir: Path) -> list[str]:
    """``--resume`` always: without a complete checkpoint it starts from step 0 in the same folder."""
    return ["--resume"]


def trial(index: int, root: Path, reference: dict[str, torch.Tensor], kills: int, seed: int) -> dict:
    rng = random.Random(seed + index)
    output_dir = root / f"trial-{index}"
    events, errors, flags = [], [], []
    targets = [("random", "save", "export")[(index + k) % 3] for k in range(kills)]
    for target in targets:
        process = start(output_dir, flags)
        events.append(kill_at(process, output_dir, target, rng))
        if events[-1].startswith("exited"):
            errors.append(process.stdout.read()[-400:])
        flags = next_start_flags(output_dir)
        if events[-1] == "finished":
            break
    while events[-1] != "finished":
        process = start(output_dir, next_start_flags(output_dir))
        process.wait()
        output = process.stdout.read()
        events.append("finished" if process.returncode == 0 else f"exited {process.returncode}")
        if process.returncode != 0:
            errors.append(output[-400:])
            if len(errors) > 3:
                break
    final = output_dir / "model" / "model.safetensors"
    identical = final.is_file() and all(
        torch.equal(tensor, load_file(final)[name]) for name, tensor in reference.items()
    )
    steps = [r["step"] for r in map(json.loads, (output_dir / "metrics.jsonl").read_text().splitlines())
             if r.get("split") == "train"] if (output_dir / "metrics.jsonl").is_file() else []  # fmt: skip
    leftovers = [
        p.name
        for p in [
            *output_dir.glob(".model.*"),
            *(output_dir / "checkpoints").glob(".tmp-*"),
            *(output_dir / "data_cache" / "fasta").glob(".*"),
        ]
    ]
    mode = oct((output_dir / "model").stat().st_mode & 0o777) if (output_dir / "model").is_dir() else None
    return {
        "trial": index,
        "events": events,
        "resumes": len(events) - 1,
        "bit_identical": identical,
        "duplicated_steps": len(steps) - len(set(steps)),
        "leftovers": leftovers,
        "model_mode": mode,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--kills_per_trial", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / "results" / "kill-sweep-runs"))
    args = parser.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    reference_dir = root / "reference"
    if not (reference_dir / "model" / "model.safetensors").is_file():
        process = start(reference_dir, ["--overwrite_output_dir"])
        process.wait()
        if process.returncode != 0:
            sys.exit("reference run failed:\n" + process.stdout.read()[-2000:])
    reference = load_file(reference_dir / "model" / "model.safetensors")
    results = []
    for index in range(args.trials):
        result = trial(index, root, reference, args.kills_per_trial, args.seed)
        results.append(result)
        print(json.dumps(result), flush=True)
    kills = sum(event.startswith("killed") for r in results for event in r["events"])
    by_target = {
        t: sum(e == f"killed ({t})" for r in results for e in r["events"]) for t in ("random", "save", "export")
    }
    print(
        f"\n{len(results)} trials, {kills} SIGKILLs ({', '.join(f'{k} {v}' for k, v in by_target.items())}), "
        f"{sum(r['resumes'] for r in results)} resumed starts; "
        f"bit-identical final weights: {sum(r['bit_identical'] for r in results)}/{len(results)}; "
        f"trials with leftovers: {sum(bool(r['leftovers']) for r in results)}; "
        f"duplicated metric steps: {sum(r['duplicated_steps'] for r in results)}; "
        f"failed starts: {sum(len(r['errors']) for r in results)}; "
        f"model folder modes: {sorted({str(r['model_mode']) for r in results})}"
    )


if __name__ == "__main__":
    main()
