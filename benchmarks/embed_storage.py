"""Size and write time of ``embed``'s per-residue output by storage setting (issue 24: 216 MB for 2,000 proteins at
hidden 128 in float32, uncompressed).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/embed_storage.py --records 2000

A random-weight Conv of hidden size 128 (2 blocks: the values' statistics, not the model's quality, set the
sizes) embeds ``include=mean,per_residue`` of the first N proteins of the shared 24,874-protein FASTA once per
setting, in this process. Reported per setting: the output's size on disk, the seconds spent in the writer
(HDF5: ``_Writer.write`` and the flush, i.e. conversion, filters and I/O; Parquet: the shard writer) and the whole
run's seconds (the forward passes are the same in every row). ``--stack`` rows add the stacked ``mean`` matrix,
timed separately (``write_index``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from embed_memory import first_records  # the corpus head, as embed_memory reads it

import protconv
from protconv.hub import save_hub_folder

SETTINGS = [
    ("hdf5", "float32", "none"),
    ("hdf5", "float16", "none"),
    ("hdf5", "float32", "gzip"),
    ("hdf5", "float16", "gzip"),
    ("hdf5", "float32", "lzf"),
    ("hdf5", "float16", "lzf"),
    ("parquet", "float32", "none"),
    ("parquet", "float16", "gzip"),
]
embed_module = importlib.import_module("protconv.inference.embed")
parquet_module = importlib.import_module("protconv.inference.embed_parquet")


class Timer:
    """Wraps methods so that their seconds add up in ``self.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner, name: str) -> None:
        real = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size


def measure(model: Path, fasta: Path, folder: Path, output_format: str, dtype: str, compression: str) -> dict:
    writer, index = Timer(), Timer()
    saved = (embed_module._Writer.write, parquet_module.ShardWriter.write, parquet_module.ShardWriter.finish)
    saved_index = embed_module.write_index
    writer.wrap(embed_module._Writer, "write")
    writer.wrap(parquet_module.ShardWriter, "write")
    writer.wrap(parquet_module.ShardWriter, "finish")
    index.wrap(embed_module, "write_index")
    output = folder / f"{output_format}-{dtype}-{compression}{'.h5' if output_format == 'hdf5' else ''}"
    start = time.perf_counter()
    try:
        embed_module.embed(model, fasta, output, include="mean,per_residue", storage_dtype=dtype,
                           compression=compression, output_format=output_format, stack=output_format == "hdf5",
                           progress=False, device="cpu")  # fmt: skip
    finally:
        embed_module._Writer.write = saved[0]
        parquet_module.ShardWriter.write, parquet_module.ShardWriter.finish = saved[1], saved[2]
        embed_module.write_index = saved_index
    total = time.perf_counter() - start
    return {"bytes": size(output), "writer": writer.seconds, "stack": index.seconds, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"box load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {args.records} proteins, hidden 128\n")
    config = protconv.ConvConfig(hidden_size=128, intermediate_size=64, num_hidden_layers=2, max_dilation=4)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = save_hub_folder(protconv.ConvForMaskedLM(config).eval(), protconv.build_tokenizer(), folder / "m")
        fasta = first_records(folder, args.records)
        rows = [(setting, measure(model, fasta, folder, *setting)) for setting in SETTINGS]
    base = rows[0][1]
    print("| format | storage_dtype | compression | size (MB) | vs float32/none | writer (s) | stack (s) | run (s) |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for (output_format, dtype, compression), found in rows:
        stack = f"{found['stack']:.2f}" if output_format == "hdf5" else "-"
        ratio = found["bytes"] / base["bytes"]
        print(f"| {output_format} | {dtype} | {compression} | {found['bytes'] / 1e6:.1f} | {ratio:.2f} | "
              f"{found['writer']:.2f} | {stack} | {found['total']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
