"""SIGKILL a tiny fine-tuning run at random moments and inside checkpoint saves; resume each with
``--resume_from_checkpoint true`` until it finishes; compare the final weights with an uninterrupted run.

    .venv/bin/python benchmarks/kill_sweep_finetune.py --trials 10

Each trial fine-tunes a tiny Conv folder on the GB1 slice (12 steps, a checkpoint every 2, ``save_total_limit 2``)
in a fresh folder and kills it once with SIGKILL, alternately at ``random`` (a uniform delay within 20-95% of an
uninterrupted run's duration) and at ``save`` (while ``OUTPUT/.tmp-checkpoint`` exists: a checkpoint is being written;
the child slows every safetensors write by 0.3 s so that the window is hit). Then it restarts with
``--resume_from_checkpoint true`` until the run finishes. Counted per trial: final weights bit-identical to the
uninterrupted run (else the largest absolute difference), leftovers (``.tmp-checkpoint``, ``.model.*`` staging,
incomplete ``checkpoint-*``), and any start that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
from kill_resume_sweep import ROOT, TINY, kill_at
from safetensors.torch import load_file

from protconv.file_guards import LOCK_FILE

CHILD = """
import sys, time
import transformers.modeling_utils as mu
def slow(save):
    def wrapped(*args, **kwargs):
        save(*args, **kwargs)
        time.sleep(0.3)
    return wrapped
mu.safe_save_file = slow(mu.safe_save_file)
from protconv.cli import main
sys.exit(main(["finetune", *sys.argv[1:]]))
"""


def make_base(folder: Path) -> None:
    import protconv

    overrides = dict(item.split("=") for item in TINY.split(","))
    torch.manual_seed(0)
    config = protconv.ConvConfig(**{key: int(value) for key, value in overrides.items()})
    protconv.ConvForMaskedLM(config).save_pretrained(folder)
    protconv.build_tokenizer().save_pretrained(folder)


def run_arguments(base: Path, output_dir: Path) -> list[str]:
    return [
        "--model", str(base), "--task", "regression",
        "--train_file", str(ROOT / "tests" / "data" / "gb1_three_vs_rest_slice.csv"),
        "--max_steps", "12", "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "2",
        "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--use_cpu", "--report_to", "none",
        "--eval_strategy", "no", "--disable_tqdm", "true", "--seed", "0", "--output_dir", str(output_dir),
    ]  # fmt: skip


def start(base: Path, output_dir: Path, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *run_arguments(base, output_dir), *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def in_save(output_dir: Path, target: str) -> bool:
    """Trainer is writing a checkpoint: protconv's staging folder exists."""
    return (output_dir / ".tmp-checkpoint").exists()


def compare(reference: dict[str, torch.Tensor], final: Path) -> tuple[bool, float | None]:
    if not final.is_file():
        return False, None
    weights = load_file(final)
    difference = max((reference[name] - weights[name]).abs().max().item() for name in reference)
    return difference == 0.0, difference


def trial(index: int, base: Path, root: Path, reference: dict[str, torch.Tensor], seed: int, span: float) -> dict:
    """``span``: how long an uninterrupted run takes; a random kill comes within 20-95% of it."""
    rng = random.Random(seed + index)
    output_dir = root / f"trial-{index}"
    target = ("random", "save")[index % 2]
    process = start(base, output_dir, [])
    events = [kill_at(process, output_dir, target, rng, delay=(0.2 * span, 0.95 * span), window=in_save, inside=0.3)]
    errors = [] if not events[-1].startswith("exited") else [process.stdout.read()[-400:]]
    resumes = 0
    while events[-1] != "finished" and len(errors) <= 3:
        process = start(base, output_dir, ["--resume_from_checkpoint", "true"])
        process.wait()
        resumes += 1
        events.append("finished" if process.returncode == 0 else f"exited {process.returncode}")
        if process.returncode != 0:
            errors.append(process.stdout.read()[-400:])
    identical, difference = compare(reference, output_dir / "model" / "model.safetensors")
    leftovers = [p.name for p in output_dir.glob(".*") if p.name != LOCK_FILE]  # the lock file stays by design
    leftovers += [p.name for p in output_dir.glob("checkpoint-*") if not (p / "protconv_checkpoint.json").is_file()]
    return {"trial": index, "target": target, "events": events, "resumes": resumes, "bit_identical": identical,
            "max_abs_difference": difference, "leftovers": leftovers, "errors": errors}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / "results" / "kill-sweep-finetune-runs"))
    args = parser.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    base = root / "base"
    if not (base / "model.safetensors").is_file():
        make_base(base)
    reference_dir = root / "reference"
    began = time.monotonic()
    if not (reference_dir / "model" / "model.safetensors").is_file():
        process = start(base, reference_dir, [])
        process.wait()
        if process.returncode != 0:
            sys.exit("reference run failed:\n" + process.stdout.read()[-2000:])
    reference = load_file(reference_dir / "model" / "model.safetensors")
    span = time.monotonic() - began if time.monotonic() - began > 5 else 20.0
    print(f"uninterrupted run: {span:.1f} s", flush=True)
    results = []
    for index in range(args.trials):
        results.append(trial(index, base, root, reference, args.seed, span))
        print(json.dumps(results[-1]), flush=True)
    kills = [e for r in results for e in r["events"] if e.startswith("killed")]
    differences = [r["max_abs_difference"] for r in results if r["max_abs_difference"] is not None]
    print(
        f"\n{len(results)} trials, {len(kills)} SIGKILLs (random {kills.count('killed (random)')}, save "
        f"{kills.count('killed (save)')}); resumes: {sum(r['resumes'] for r in results)}; "
        f"bit-identical final weights: {sum(r['bit_identical'] for r in results)}/{len(results)} "
        f"(largest difference {max(differences, default=float('nan')):.3g}); "
        f"trials with leftovers: {sum(bool(r['leftovers']) for r in results)}; "
        f"failed starts: {sum(len(r['errors']) for r in results)}"
    )


if __name__ == "__main__":
    main()
