"""Pretrained Conv vs Performer, MLM vs MLM+profile, beside the baselines: the "## Pretrained models" rows of
benchmarks/results/evaluate.md.

Four models of the same size (``carp-600k`` and ``performer-small``, about 0.6M parameters each) are pretrained
with the real CLI (``python -m protconv.cli pretrain``) on the same data, with the same steps, batch tokens,
crops, learning rate, schedule and seed: the shared corpus FASTA plus the shared MSAs, whose members carry
profile targets under ``mlm+profile`` and are plain MLM examples under ``mlm``. So the two objectives see the
same sequences in the same batches, and the two families the same batches too. A random-weight ``carp-600k``
(seed 0) is the floor. Then one ``protconv evaluate`` runs all five models on ``benchmarks/evaluate_models.yaml``
(zero-shot on the full beta-lactamase assay, FLIP GB1 regression, FLIP secondary structure per residue), the
baselines (BLOSUM62, one-hot linear, CNN from scratch) beside.

Each pretraining is skipped when its ``model/`` folder exists (``--overwrite`` redoes it) and ``evaluate`` reuses
finished (task, model) results, so a killed run continues where it stopped. Runs go ``--parallel`` at a time,
each with ``OMP_NUM_THREADS=--threads``.

    PYTHONPATH=src python benchmarks/evaluate_models.py --out scratch/evaluate-models --steps 600 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SUITE = Path(__file__).resolve().with_name("evaluate_models.yaml")


@dataclass(frozen=True)
class Run:
    name: str  # the column name in the results table (and the model folder's name)
    preset: str
    objective: str


RUNS = (
    Run("conv-mlm", "carp-600k", "mlm"),
    Run("performer-mlm", "performer-small", "mlm"),
    Run("conv-mlm+profile", "carp-600k", "mlm+profile"),
    Run("performer-mlm+profile", "performer-small", "mlm+profile"),
)
RANDOM = "conv-random"


def cli() -> list[str]:
    return [sys.executable, "-m", "protconv.cli"]


def environment(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def pretrain_command(run: Run, args: argparse.Namespace) -> list[str]:
    """The one pretraining command every model gets, differing only in --model and --pretraining_objective."""
    msas = sorted(str(p) for p in args.msa_dir.iterdir() if p.suffix in (".a3m", ".sto"))
    folder = args.out / "runs" / run.name
    return [*cli(), "pretrain", "--model", run.preset, "--pretraining_objective", run.objective,
            "--train_files", str(args.corpus), "--msa_files", *msas,
            "--validation_fraction", "0.02", "--max_validation_sequences", "500",
            "--max_length", str(args.max_length), "--max_tokens_per_batch", str(args.tokens_per_batch),
            "--learning_rate", str(args.learning_rate), "--warmup_steps", str(args.steps // 10),
            "--lr_scheduler_type", "linear", "--max_steps", str(args.steps), "--seed", str(args.seed),
            "--logging_steps", "50", "--eval_steps", str(max(args.steps // 4, 1)), "--save_steps", str(args.steps),
            "--save_total_limit", "1", "--data_cache_dir", str(folder / "data-cache"),
            "--output_dir", str(folder), "--overwrite_output_dir", "--disable_tqdm", "true"]  # fmt: skip


def pretrain_all(args: argparse.Namespace) -> dict[str, float]:
    """Runs the missing pretrainings, ``--parallel`` at a time; returns each one's wall seconds (kept in
    ``runs/<name>.seconds``, so a reused run reports its own time)."""
    pending = [run for run in RUNS if run.name in args.models]
    if not args.overwrite:
        pending = [run for run in pending if not (args.out / "runs" / run.name / "model").is_dir()]
    seconds: dict[str, float] = {}
    running: list[tuple[Run, subprocess.Popen, float]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            run = pending.pop(0)
            folder = args.out / "runs" / run.name
            folder.mkdir(parents=True, exist_ok=True)
            command = pretrain_command(run, args)
            (folder.parent / f"{run.name}.command").write_text(" ".join(command) + "\n")
            log = (folder.parent / f"{run.name}.log").open("w")
            print(f"pretraining {run.name}: {' '.join(command)}", flush=True)
            process = subprocess.Popen(command, env=environment(args.threads), stdout=log, stderr=subprocess.STDOUT)
            running.append((run, process, time.perf_counter()))
        time.sleep(2)
        for entry in list(running):
            run, process, start = entry
            if process.poll() is None:
                continue
            running.remove(entry)
            if process.returncode != 0:
                raise SystemExit(f"pretraining {run.name} failed (exit {process.returncode}): see its .log")
            seconds[run.name] = time.perf_counter() - start
            (args.out / "runs" / f"{run.name}.seconds").write_text(f"{seconds[run.name]:.1f}\n")
            print(f"pretrained {run.name} in {seconds[run.name]:.0f} s", flush=True)
    for run in RUNS:
        saved = args.out / "runs" / f"{run.name}.seconds"
        if run.name not in seconds and saved.is_file():
            seconds[run.name] = float(saved.read_text())
    return seconds


def random_conv(folder: Path, seed: int) -> None:
    """The random-weight floor: carp-600k initialised with ``seed``, saved like a pretrained folder."""
    import torch

    import protconv

    torch.manual_seed(seed)
    protconv.ConvForMaskedLM(protconv.ConvConfig.from_preset("carp-600k")).save_pretrained(folder)
    protconv.build_tokenizer().save_pretrained(folder)


def collect_models(args: argparse.Namespace) -> list[str]:
    """Copies every model folder to ``OUT/models/<name>`` so that evaluate's columns carry the names."""
    models = args.out / "models"
    models.mkdir(parents=True, exist_ok=True)
    names = [RANDOM] if RANDOM in args.models else []
    if names and not (models / RANDOM).is_dir():
        random_conv(models / RANDOM, args.seed)
    for run in RUNS:
        if run.name not in args.models:
            continue
        source, target = args.out / "runs" / run.name / "model", models / run.name
        if args.overwrite or not target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        names.append(run.name)
    return names


def final_validation(run: Run, args: argparse.Namespace) -> dict[str, float]:
    """The last validation record of the run's metrics.jsonl (the final model's held-out figures)."""
    lines = (args.out / "runs" / run.name / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    validation = [r for r in records if r.get("split") == "validation"]
    train = [r for r in records if r.get("split") == "train"]
    return {"step": validation[-1]["step"], "perplexity": validation[-1]["perplexity"],
            "initial_perplexity": validation[0]["perplexity"], "profile_kl": validation[-1].get("profile_kl"),
            "train_loss": train[-1]["loss"] if train else None,
            "train_profile_kl": train[-1].get("profile_kl") if train else None}  # fmt: skip


def evaluate(names: list[str], args: argparse.Namespace) -> list[str]:
    """One ``protconv evaluate`` with every model, run inside OUT/models so the columns are the folder names."""
    command = [*cli(), "evaluate", *names, "--suite", str(args.suite.resolve()),
               "--output_dir", str((args.out / "evaluate").resolve()), "--no_progress"]  # fmt: skip
    print(f"evaluating: (cd {args.out / 'models'} && {' '.join(command)})", flush=True)
    start = time.perf_counter()
    subprocess.run(command, env=environment(args.eval_threads), cwd=args.out / "models", check=True)
    print(f"evaluate took {time.perf_counter() - start:.0f} s", flush=True)
    return command


def results_table(folder: Path) -> str:
    """results.md's task rows, with a single-assay task's standard error taken from its assay row (the task
    summary's error resamples assays, so it has none for one assay), models after the reference columns."""
    records = json.loads((folder / "results.json").read_text())["results"]
    cells = {(r["task"], r["metric"], r["model"]): r for r in records if r["assay"] is None}
    for r in records:
        key = (r["task"], r["metric"], r["model"])
        if r["assay"] and not r["assay"].startswith("type:") and key in cells and cells[key]["stderr"] is None:
            cells[key] = {**cells[key], "stderr": r["stderr"]}
    rows = list(dict.fromkeys((task, metric) for task, metric, _ in cells))
    columns = list(dict.fromkeys(model for _, _, model in cells))
    lines = ["| task | metric | " + " | ".join(columns) + " |", "|---" * (2 + len(columns)) + "|"]
    for task, metric in rows:
        found = [cells.get((task, metric, c)) for c in columns]
        best = max(r["value"] for r in found if r)
        shown = [
            ""
            if r is None
            else ("**{}**" if r["value"] == best else "{}").format(
                f"{r['value']:.3f}" + (f" ± {r['stderr']:.3f}" if r["stderr"] is not None else "")
            )
            for r in found
        ]
        lines.append(f"| {task} | {metric} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("scratch/evaluate-models"))
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "structural_proteins.fasta")
    parser.add_argument("--msa-dir", type=Path, default=SHARED / "msa")
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--tokens-per-batch", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=2, help="pretrainings at once")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per pretraining")
    parser.add_argument("--eval-threads", type=int, default=2, help="OMP threads for evaluate")
    parser.add_argument("--models", nargs="+", default=[RANDOM, *(run.name for run in RUNS)],
                        choices=[RANDOM, *(run.name for run in RUNS)])  # fmt: skip
    parser.add_argument("--skip-evaluate", action="store_true", help="only pretrain")
    parser.add_argument("--table-only", action="store_true", help="only print the table of a finished run")
    parser.add_argument("--overwrite", action="store_true", help="pretrain again even where a model/ exists")
    args = parser.parse_args()
    if args.table_only:
        print(results_table(args.out / "evaluate"), end="")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = pretrain_all(args)
    summary = {run.name: {"seconds": round(seconds.get(run.name, 0)), **final_validation(run, args),
                          "command": " ".join(pretrain_command(run, args))}
               for run in RUNS if run.name in args.models}  # fmt: skip
    print(json.dumps(summary, indent=1), flush=True)
    (args.out / "pretraining.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not args.skip_evaluate:
        evaluate(collect_models(args), args)
        table = results_table(args.out / "evaluate")
        (args.out / "table.md").write_text(table)
        print(table, end="")


if __name__ == "__main__":
    main()
