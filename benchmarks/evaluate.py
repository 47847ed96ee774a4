"""Throughput of `protconv evaluate` against `protconv score` alone on one ProteinGym assay (the beta-lactamase
scan in ../shared/data/proteingym, 4,996 single mutants): evaluate must reach >= 0.95x score's variants per
second. Both run the same random-weight Conv model on the CPU; evaluate's time includes its metrics, their
bootstrap (``--bootstrap``), the BLOSUM62 column and its outputs.

    PYTHONPATH=src python benchmarks/evaluate.py [--data ../shared/data/proteingym] [--bootstrap 100]
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
        task = proteingym_task(data, None, "masked-marginal")
        variants = len(task.assays[0].variants)
        for repeat in range(args.repeats):
            started = time.perf_counter()
            score(model, data / row["DMS_filename"], Path(tmp) / f"s{repeat}.csv", sequence=row["target_seq"],
                  offset=1, progress=False)  # fmt: skip
            alone = time.perf_counter() - started
            started = time.perf_counter()
            evaluate([model], [task], EvaluateOptions(Path(tmp) / f"e{repeat}", bootstrap=args.bootstrap))
            inside = time.perf_counter() - started
            print(f"run {repeat + 1}: score {variants / alone:.0f} variants/s ({alone:.2f} s), evaluate "
                  f"{variants / inside:.0f} variants/s ({inside:.2f} s), ratio {alone / inside:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
