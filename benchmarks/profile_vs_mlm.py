"""MLM vs profile prediction vs multi-task pretraining, judged by a linear probe on secondary structure.

The same small Conv model (carp-600k shape, same seed, same batches) is pretrained for the same number of
steps on the shared MSAs with each objective: masked LM only, profile only, and MLM + profile (Sturmfels et al.
2020: loss = 0.25 MLM + 0.75 * 10 KL). Each backbone is then frozen and a linear (multinomial logistic) probe is
fitted on its per-residue embeddings for 3-state secondary structure (FLIP ``sampled`` split), with the L2
strength chosen on the validation proteins; the table reports test Q3 accuracy. A randomly initialised backbone
is probed as the floor. Whatever the table shows is reported as is.

    .venv/bin/python benchmarks/profile_vs_mlm.py --steps 400 --out benchmarks/results/profile_vs_mlm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState, GradientState
from tables import write_markdown
from torch.nn import functional as F
from transformers import AutoModel, PreTrainedModel

from protconv.data.task_files import LabelledSequences
from protconv.downstream.task_data import TaskDataArguments, load_task_splits, subsample
from protconv.modeling.vocabulary import IGNORE_INDEX
from protconv.pretraining import DataArguments, ModelArguments, PretrainingArguments, build_pretraining_model, pretrain
from protconv.tokenization import build_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OBJECTIVES = ("mlm", "profile", "mlm+profile")
ALPHAS = (1e-3, 1e-2, 1e-1, 1.0)


def pretrain_objective(objective: str, args: argparse.Namespace) -> tuple[Path, dict[str, float], float]:
    """One pretraining run; returns the exported folder, its final validation metrics and its seconds."""
    msas = sorted(str(p) for p in args.msa_dir.iterdir() if p.suffix in (".a3m", ".sto"))
    output = args.out.parent / f"{args.out.name}-runs" / objective.replace("+", "_")
    start = time.perf_counter()
    result = pretrain(
        ModelArguments(model=args.preset, pretraining_objective=objective),
        DataArguments(
            msa_files=msas, validation_fraction=0.05, max_length=512, max_tokens_per_batch=args.tokens_per_batch,
            prefetch_batches=1,
        ),
        PretrainingArguments(
            output_dir=str(output), overwrite_output_dir=True, max_steps=args.steps, warmup_steps=args.steps // 10,
            learning_rate=1e-3, eval_steps=max(args.steps // 4, 1), save_steps=args.steps, logging_steps=50,
            seed=args.seed, disable_tqdm=True, plot=True,
        ),
    )  # fmt: skip
    AcceleratorState._reset_state(reset_partial_state=True)  # the next run builds a fresh Accelerator
    GradientState._reset_state()
    return result.model_dir, result.validation, time.perf_counter() - start


@torch.no_grad()
def residue_features(model: PreTrainedModel, data: LabelledSequences) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen last-layer embeddings of every labelled residue, and the labels."""
    tokenizer = build_tokenizer(add_cls=True, add_eos=True)
    model.eval()
    features, labels = [], []
    for sequence, residue_labels in zip(data.sequences, data.labels, strict=True):
        encoded = tokenizer(sequence[:1022], return_tensors="pt")
        hidden = model(**encoded).last_hidden_state[0, 1:-1]
        target = torch.tensor(residue_labels[:1022])
        keep = target != IGNORE_INDEX
        features.append(hidden[keep])
        labels.append(target[keep])
    return torch.cat(features), torch.cat(labels)


def linear_probe(splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float, float]:
    """Multinomial logistic regression (L-BFGS) on standardised features; L2 chosen on valid.
    Returns (valid accuracy, test accuracy, chosen alpha)."""
    x_train, y_train = splits["train"]
    mean, std = x_train.mean(0), x_train.std(0).clamp(min=1e-6)
    scaled = {name: ((x - mean) / std, y) for name, (x, y) in splits.items()}
    classes = int(y_train.max()) + 1
    best = (-1.0, 0.0, 0.0)
    for alpha in ALPHAS:
        torch.manual_seed(0)
        probe = torch.nn.Linear(x_train.shape[1], classes)
        optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=200, line_search_fn="strong_wolfe")

        def closure(probe=probe, optimizer=optimizer, alpha=alpha) -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(probe(scaled["train"][0]), y_train) + alpha * probe.weight.pow(2).sum() / classes
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            accuracy = {name: float((probe(x).argmax(-1) == y).float().mean()) for name, (x, y) in scaled.items()}
        if accuracy["valid"] > best[0]:
            best = (accuracy["valid"], accuracy["test"], alpha)
    return best


def secondary_structure(args: argparse.Namespace) -> dict[str, LabelledSequences]:
    ss = args.tasks / "secondary_structure"
    task = TaskDataArguments(
        "token-classification", str(ss / "sequences.fasta"), labels_file=str(ss / "sampled.fasta"),
        mask_file=str(ss / "mask.fasta"), classes="CHE",
    )  # fmt: skip
    splits, _ = load_task_splits(task, args.seed)
    limits = {"train": args.probe_train, "valid": args.probe_eval, "test": args.probe_eval}
    return {name: subsample(data, limits[name], args.seed) for name, data in splits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msa-dir", type=Path, default=SHARED / "msa")
    parser.add_argument("--tasks", type=Path, default=SHARED / "tasks")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile_vs_mlm"))
    parser.add_argument("--preset", default="carp-600k")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--tokens-per-batch", type=int, default=4096)
    parser.add_argument("--probe-train", type=int, default=400, help="SS training proteins for the probe")
    parser.add_argument("--probe-eval", type=int, default=400, help="SS valid/test proteins (each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    ss = secondary_structure(args)
    torch.manual_seed(args.seed)
    rows = []
    backbones: dict[str, tuple[PreTrainedModel, dict, float]] = {
        "none (random init)": (build_pretraining_model(args.preset).base_model, {}, 0.0)
    }
    for objective in OBJECTIVES:
        folder, validation, seconds = pretrain_objective(objective, args)
        backbones[objective] = (AutoModel.from_pretrained(folder), validation, seconds)
    for name, (backbone, validation, seconds) in backbones.items():
        features = {split: residue_features(backbone, data) for split, data in ss.items()}
        valid, test, alpha = linear_probe(features)
        row = {
            "pretraining objective": name,
            "steps": 0 if name.startswith("none") else args.steps,
            "pretrain seconds": round(seconds),
            "validation MLM perplexity": round(validation["perplexity"], 2) if "perplexity" in validation else "",
            "validation profile KL": round(validation["profile_kl"], 4) if "profile_kl" in validation else "",
            "SS probe valid Q3": round(valid, 4),
            "SS probe test Q3": round(test, 4),
            "probe L2": alpha,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_table(rows, args, {name: len(ss[name].sequences) for name in ss})


def write_table(rows: list[dict], args: argparse.Namespace, sizes: dict[str, int]) -> None:
    footnote = (
        f"{args.preset}, seed {args.seed}, {args.steps} steps of <= {args.tokens_per_batch} tokens on "
        f"{args.msa_dir} (.a3m/.sto; 5% of members held out for validation); probe: SS proteins "
        f"{sizes} (FLIP sampled split, subsampled), last-layer embeddings, test Q3 over labelled residues; CPU."
    )
    write_markdown(rows, list(rows[0]), footnote, args.out)


if __name__ == "__main__":
    main()
