"""Throughput of `protconv evaluate` against `protconv score` alone on one ProteinGym assay (the beta-lactamase
scan in ../shared/data/proteingym, 4,996 single mutants): evaluate must reach >= 0.95x score's variants per
second. Both run the same random-weight Conv model on the CPU; evaluate's time includes its metrics, their
bootstrap (``--bootstrap``), the BLOSUM62 column and its outputs.

    PYTHONPATH=src python benchmarks/evaluate.py [--data ../shared/data/proteingym] [--bootstrap 100] [--assays 1]

``--assays N`` (N > 1): a suite of N assays (copies of the first under N names) in one evaluate, against the sum of
N separate `score` runs (the issue asks >= 0.95x of that sum too).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

import protconv
from protconv.evaluation import EvaluateOptions, evaluate, proteingym_task
from protconv.hub import save_hub_folder
from protconv.inference import score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/proteingym"))
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--assays", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        config = protconv.ConvConfig(hidden_size=args.hidden_size, intermediate_size=args.hidden_size // 2,
                                     num_hidden_layers=4, max_dilation=4)  # fmt: skip
        model = str(
            save_hub_folder(protconv.ConvForMaskedLM(config).eval(), protconv.build_tokenizer(), Path(tmp) / "m")
        )
        with open(data / "DMS_substitutions.csv", encoding="utf-8") as handle:
            row = next(csv.DictReader(handle))
        if args.assays > 1:
            data = _copies(data, row, args.assays, Path(tmp) / "suite")
        task = proteingym_task(data, None, "masked-marginal")
        variants = sum(assay.size for assay in task.assays)
        for repeat in range(args.repeats):
            started = time.perf_counter()
            for assay in task.assays:
                score(model, assay.path, Path(tmp) / f"s{repeat}.csv", sequence=row["target_seq"], offset=1,
                      progress=False)  # fmt: skip
            alone = time.perf_counter() - started
            started = time.perf_counter()
            evaluate([model], [task], EvaluateOptions(Path(tmp) / f"e{repeat}", bootstrap=args.bootstrap))
            inside = time.perf_counter() - started
            print(f"run {repeat + 1}: score {variants / alone:.0f} variants/s ({alone:.2f} s), evaluate "
                  f"{variants / inside:.0f} variants/s ({inside:.2f} s), ratio {alone / inside:.2f}x")  # fmt: skip


def _copies(data: Path, row: dict[str, str], count: int, folder: Path) -> Path:
    """A ProteinGym folder of ``count`` copies of the first assay, each its own reference row."""
    folder.mkdir()
    source = (data / row["DMS_filename"]).read_text(encoding="utf-8")
    with open(folder / "DMS_substitutions.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        for number in range(count):
            (folder / f"assay{number}.csv").write_text(source, encoding="utf-8")
            writer.writerow({**row, "DMS_id": f"assay{number}", "DMS_filename": f"assay{number}.csv"})
    return folder


if __name__ == "__main__":
    main()
