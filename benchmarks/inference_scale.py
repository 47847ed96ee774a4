"""embed on 2 processes against 1 (torchrun, gloo, one thread per process) and the token plan's balance.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/inference_scale.py --records 2000

Balance: the plan of ``protconv.inference.distributed.plan_chunks`` (the one-process batches, whole, largest first to
the least-loaded rank) simulated on the lengths of the shared 24,874-protein FASTA at 2, 8 and 64 ranks, for the
default token budget and a smaller one. Throughput: wall time of ``protconv embed`` (a tiny random Conv,
``include=mean``) on the first N proteins, 1 process and 2 (``torchrun --standalone``); per-process throughput at
2 / at 1 is (records / time / 2) / (records / time). The machine is shared: the figures carry its load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protconv.data.fasta import read_fasta
from protconv.inference.distributed import imbalance, plan_chunks, rank_tokens

CORPUS = Path("/work/shared/data/corpus/structural_proteins.fasta")


def balance(lengths: list[int]) -> None:
    for budget in (16384, 4096):
        figures = []
        for ranks in (2, 8, 64):
            figures.append(
                f"{ranks} ranks {imbalance(rank_tokens(plan_chunks(lengths, 10_000, budget, 2, ranks), ranks)):.3f}"
            )
        print(f"max/mean padded tokens, budget {budget}: " + ", ".join(figures))


def tiny_model(folder: Path) -> Path:
    import protconv
    from protconv.hub import save_hub_folder

    model = protconv.ConvForMaskedLM(protconv.ConvConfig(hidden_size=64, intermediate_size=32, num_hidden_layers=4))
    return save_hub_folder(model.eval(), protconv.build_tokenizer(), folder / "model")


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    records = list(read_fasta(CORPUS, unknown="X"))
    balance([len(record.sequence) for record in records])
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = tiny_model(folder)
        fasta = folder / "subset.fasta"
        fasta.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in records[: args.records]))
        embed = ["-m", "protconv", "embed", str(model), str(fasta)]
        one = timed([sys.executable, *embed, str(folder / "one.h5"), "--unknown", "X", "--duplicate_ids", "rename"])
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        two = timed([*launcher, *embed, str(folder / "two.h5"), "--unknown", "X", "--duplicate_ids", "rename"])
        print(
            f"{args.records} records: 1 process {one:.1f}s, 2 processes {two:.1f}s; per-process throughput "
            f"2/1 = {one / two / 2:.2f} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )


if __name__ == "__main__":
    main()
