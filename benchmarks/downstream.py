"""Downstream table: supervised baselines beside fine-tuned protconv models, same splits, same metrics.

Rows are task/split, columns are: one-hot linear model (ridge / logistic), small CNN from scratch, Conv
(carp-600k) from scratch, Conv pretrained (``--pretrained FOLDER``, if given), Performer (performer-small) from
scratch. Tasks without a test split (TAPE stability, remote homology) report their official validation set and
select hyper-parameters on 10% of train instead, so no reported number was used for model selection.
Large training sets are subsampled (``--max-train``, seeded) and the table says so.

    .venv/bin/python benchmarks/downstream.py --data ../shared/data/tasks --out benchmarks/results/downstream

By default the neural columns train 3 epochs and report the last one (about 50 minutes on 2 CPU cores for all
five rows); ``--epochs 10 --keep-best`` gives them the CNN column's budget and selection rule instead.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from tables import write_markdown
from transformers import TrainingArguments

from protconv.data.task_files import LabelledSequences
from protconv.downstream.baselines import PRIMARY_METRIC, cnn_baseline, linear_baseline
from protconv.downstream.finetune import FinetuneArguments, finetune
from protconv.downstream.task_data import TaskDataArguments, load_task_splits, subsample


def task_rows(data: Path) -> dict[str, TaskDataArguments]:
    ss = data / "secondary_structure"
    return {
        "stability (valid)": TaskDataArguments(
            "regression", str(data / "stability/train.csv"), validation_file=str(data / "stability/valid.csv")
        ),
        "GB1 three_vs_rest (test)": TaskDataArguments("regression", str(data / "gb1/three_vs_rest.csv")),
        "GB1 low_vs_high (test)": TaskDataArguments("regression", str(data / "gb1/low_vs_high.csv")),
        "secondary structure (test)": TaskDataArguments(
            "token-classification",
            str(ss / "sequences.fasta"),
            labels_file=str(ss / "sampled.fasta"),
            mask_file=str(ss / "mask.fasta"),
            classes="CHE",
        ),
        "remote homology (valid)": TaskDataArguments(
            "classification",
            str(data / "remote_homology/train.csv"),
            validation_file=str(data / "remote_homology/valid.csv"),
        ),
    }


def prepare_splits(args: TaskDataArguments, max_train: int, seed: int) -> tuple[dict[str, LabelledSequences], str]:
    """Splits with a held-out selection set; returns them and a note on subsampling."""
    splits, _ = load_task_splits(args, seed)
    if "test" not in splits:  # report the official validation set; select on 10% of train
        splits["test"] = splits.pop("valid")
        train = splits["train"]
        order = np.random.default_rng(seed).permutation(len(train))
        cut = len(train) // 10
        splits["valid"] = _take(train, order[:cut])
        splits["train"] = _take(train, order[cut:])
    note = f"{len(splits['train'])} train"
    if len(splits["train"]) > max_train:
        note = f"{max_train} of {len(splits['train'])} train (subsampled)"
        splits["train"] = subsample(splits["train"], max_train, seed)
    return splits, note


def _take(data: LabelledSequences, index: np.ndarray) -> LabelledSequences:
    return LabelledSequences(
        [data.sequences[i] for i in index], [data.labels[i] for i in index], [data.names[i] for i in index]
    )


def write_splits_as_files(splits: dict[str, LabelledSequences], task: str, folder: Path) -> TaskDataArguments:
    """The neural columns go through ``protconv.downstream.finetune`` exactly as a user would: via files."""
    if task == "token-classification":
        classes = "CHE"
        with (
            open(folder / "seq.fasta", "w") as seqs,
            open(folder / "lab.fasta", "w") as labs,
            open(folder / "mask.fasta", "w") as masks,
        ):
            for split, data in splits.items():
                flags = {"train": "SET=train VALIDATION=False", "valid": "SET=train VALIDATION=True"}
                header = flags.get(split, "SET=test VALIDATION=False")
                for i, (sequence, labels) in enumerate(zip(data.sequences, data.labels, strict=True)):
                    name = f"{split}{i}"
                    seqs.write(f">{name}\n{sequence}\n")
                    labs.write(f">{name} {header}\n{''.join(classes[y] if y >= 0 else 'C' for y in labels)}\n")
                    masks.write(f">{name}\n{''.join('0' if y < 0 else '1' for y in labels)}\n")
        return TaskDataArguments(task, str(folder / "seq.fasta"), labels_file=str(folder / "lab.fasta"),
                                 mask_file=str(folder / "mask.fasta"), classes=classes)  # fmt: skip
    paths = {}
    for split, data in splits.items():
        paths[split] = folder / f"{split}.csv"
        with open(paths[split], "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["seq", "label"])
            writer.writerows(zip(data.sequences, data.labels, strict=True))
    return TaskDataArguments(task, str(paths["train"]), str(paths["valid"]), str(paths["test"]))


def neural_column(
    model: str, data_args: TaskDataArguments, epochs: float, seed: int, workdir: Path, keep_best: bool
) -> tuple:
    """Fine-tune one model through ``finetune``; ``keep_best`` keeps the epoch with the best selection-split score
    (Trainer's load_best_model_at_end), the rule the CNN column follows, instead of the last epoch."""
    start = time.perf_counter()
    args = FinetuneArguments(**dataclasses.asdict(data_args), model=model, max_length=1024)
    training = TrainingArguments(
        output_dir=str(workdir), num_train_epochs=epochs, per_device_train_batch_size=16,
        per_device_eval_batch_size=32, learning_rate=1e-3, warmup_steps=0.05, weight_decay=0.01, use_cpu=True,
        report_to=[], eval_strategy="epoch", save_strategy="epoch" if keep_best else "no", save_total_limit=1,
        load_best_model_at_end=keep_best, metric_for_best_model=PRIMARY_METRIC[data_args.task],
        disable_tqdm=True, seed=seed, logging_strategy="no",
    )  # fmt: skip
    results = finetune(args, training)
    return results["test"][PRIMARY_METRIC[data_args.task]], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/tasks")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/downstream"))
    parser.add_argument("--max-train", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=3.0, help="epochs of the neural columns")
    parser.add_argument("--cnn-epochs", type=int, default=10)
    parser.add_argument("--pretrained", default=None, help="a pretrained protconv folder for its own column")
    parser.add_argument("--rows", default=None, help="comma-separated substrings selecting rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep-best", action="store_true", help="neural columns keep their best epoch on the selection split"
    )
    args = parser.parse_args()

    models = {"Conv carp-600k (scratch)": "carp-600k"}  # column -> model, in the table's order
    if args.pretrained:
        models["Conv (pretrained)"] = args.pretrained
    models["Performer small (scratch)"] = "performer-small"
    header = ["task / split", "metric", "data", "linear (one-hot)", "CNN (scratch)", *models]
    rows = task_rows(args.data)
    if args.rows:
        rows = {k: v for k, v in rows.items() if any(s.strip() in k for s in args.rows.split(","))}
    table: list[dict[str, str]] = []
    for row, task_args in rows.items():
        splits, note = prepare_splits(task_args, args.max_train, args.seed)
        task = task_args.task
        metric = PRIMARY_METRIC[task]
        cells: dict[str, str] = {"task / split": row, "metric": metric, "data": note}
        linear = linear_baseline(task, splits)
        cells["linear (one-hot)"] = f"{linear.metrics['test'][metric]:.3f} ({linear.seconds:.0f}s)"
        cnn = cnn_baseline(task, splits, epochs=args.cnn_epochs, seed=args.seed)
        cells["CNN (scratch)"] = f"{cnn.metrics['test'][metric]:.3f} ({cnn.seconds:.0f}s)"
        with tempfile.TemporaryDirectory() as tmp:
            data_args = write_splits_as_files(splits, task, Path(tmp))
            for column, model in models.items():
                score, seconds = neural_column(
                    model, data_args, args.epochs, args.seed, Path(tmp) / column, args.keep_best
                )
                cells[column] = f"{score:.3f} ({seconds:.0f}s)"
        table.append(cells)
        print(" | ".join(cells[column] for column in header), flush=True)
        write_table(table, header, args)  # after every row, so a long run keeps what it measured


def write_table(table: list[dict[str, str]], header: list[str], args: argparse.Namespace) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(table)
    footnote = (
        f"seed {args.seed}; neural columns {args.epochs:g} epochs (lr 1e-3, batch 16), "
        f"{'best epoch on selection split' if args.keep_best else 'last epoch'}; CNN up to {args.cnn_epochs} "
        "epochs (best on selection split); cells: score (train+eval seconds); CPU."
    )
    write_markdown(table, header, footnote, args.out)


if __name__ == "__main__":
    main()
