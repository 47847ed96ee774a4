"""Throughput of `protconv evaluate` against `protconv score` alone on one ProteinGym assay (the beta-lactamase
scan in ../shared/data/proteingym, 4,996 single mutants): evaluate must reach >= 0.95x score's variants per
second. Both run the same random-weight Conv model on the CPU; evaluate's time includes reading and checking the
assay, its metrics, their bootstrap (``--bootstrap``), the BLOSUM62 column, its outputs and plots.

    PYTHONPATH=src python benchmarks/evaluate.py [--data ../shared/data/proteingym] [--bootstrap 100] [--assays 1]
    PYTHONPATH=src python benchmarks/evaluate.py --memory 1 4 16

``--assays N`` (N > 1): a suite of N assays (copies of the first under N names) in one evaluate, against the sum of
N separate `score` runs (the issue asks >= 0.95x of that sum too). ``--memory N ...``: for each N, a fresh process
runs one evaluate on N copies and reports its peak RSS and how far it rose above the RSS before the suite was read
(the zero-shot run streams assay by assay: the goal is a rise flat in N).
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
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
    parser.add_argument("--memory", type=int, nargs="+", help="peak RSS of one evaluate on each number of copies")
    parser.add_argument("--memory_child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        for count in args.memory:
            command = [sys.executable, __file__, "--memory_child", str(count), "--data", args.data,
                       "--bootstrap", str(args.bootstrap), "--hidden_size", str(args.hidden_size)]  # fmt: skip
            print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip(), flush=True)
        return
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(args.hidden_size, Path(tmp))
        with open(Path(args.data) / "DMS_substitutions.csv", encoding="utf-8") as handle:
            row = next(csv.DictReader(handle))
        count = args.memory_child or args.assays
        data = _copies(Path(args.data), row, count, Path(tmp) / "suite") if count > 1 else Path(args.data)
        if args.memory_child:
            _memory(model, data, count, args.bootstrap, Path(tmp))
        else:
            _throughput(model, data, row, args.repeats, args.bootstrap, Path(tmp))


def _model(hidden_size: int, folder: Path) -> str:
    config = protconv.ConvConfig(hidden_size=hidden_size, intermediate_size=hidden_size // 2, num_hidden_layers=4,
                                 max_dilation=4)  # fmt: skip
    return str(save_hub_folder(protconv.ConvForMaskedLM(config).eval(), protconv.build_tokenizer(), folder / "m"))


def _throughput(model: str, data: Path, row: dict[str, str], repeats: int, bootstrap: int, tmp: Path) -> None:
    """score alone on every assay, then one evaluate of them all (reading and checking the suite included)."""
    paths = sorted(data.glob("*.csv"))
    paths = [p for p in paths if p.name != "DMS_substitutions.csv"]
    variants = 0
    for repeat in range(repeats):
        started = time.perf_counter()
        for path in paths:
            result = score(model, path, tmp / f"s{repeat}.csv", sequence=row["target_seq"], offset=1, progress=False)
        alone = time.perf_counter() - started
        variants = len(result.scores) * len(paths)
        started = time.perf_counter()
        task = proteingym_task(data, None, "masked-marginal")
        evaluate([model], [task], EvaluateOptions(tmp / f"e{repeat}", bootstrap=bootstrap))
        inside = time.perf_counter() - started
        print(f"run {repeat + 1}: score {variants / alone:.0f} variants/s ({alone:.2f} s), evaluate "
              f"{variants / inside:.0f} variants/s ({inside:.2f} s), ratio {alone / inside:.2f}x",
              flush=True)  # fmt: skip


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _memory(model: str, data: Path, count: int, bootstrap: int, tmp: Path) -> None:
    before = _rss_mib()
    task = proteingym_task(data, None, "masked-marginal")
    evaluate([model], [task], EvaluateOptions(tmp / "e", bootstrap=bootstrap))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    variants = sum(assay.size for assay in task.assays)
    print(f"{count} assays ({variants} variants): peak RSS {peak:.0f} MiB, {peak - before:.0f} MiB above the RSS "
          f"before the suite was read ({before:.0f} MiB)")  # fmt: skip


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
