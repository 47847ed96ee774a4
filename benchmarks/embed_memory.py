"""Peak resident memory of ``embed`` over 1k/5k/25k real proteins, as ``embed`` runs now and with its memory
bounds undone one by one.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/embed_memory.py --records 1000 5000 24874

Modes: ``now`` is ``embed`` as it is (glibc ``malloc_trim`` after every batch, the output's HDF5 metadata cache
held to ``METADATA_CACHE_BYTES``, oneDNN's primitive cache off); ``trim only`` undoes the last two (HDF5's
default metadata cache, oneDNN's default of 1024 primitives: the code before them); ``none`` undoes the trim
too. ``--chunk_sizes`` adds ``now`` rows at other ``chunk_size`` values (records read into memory at a time).
Each run is a fresh process: a tiny random-weight Conv embeds (``include=mean``, default token budget) the first
N proteins of the shared 24,874-protein FASTA; reported are the resident size after the model is loaded and the
peak (``ru_maxrss``), so the growth is what the embedding loop itself adds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CORPUS = Path("/work/shared/data/corpus/structural_proteins.fasta")
CHILD = """
import importlib, json, resource, sys
common = importlib.import_module("protconv.inference.common")
embed_module = importlib.import_module("protconv.inference.embed")
import h5py
if sys.argv[4] in ("none", "trim only"):
    embed_module.open_store = lambda path: h5py.File(path, "a")
if sys.argv[4] == "none":
    common.release_memory = embed_module.release_memory = lambda: None
def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20
load = embed_module.ModelSession.load
start = {}
def loaded(self, *args):
    result = load(self, *args)
    start["rss"] = rss()
    return result
embed_module.ModelSession.load = loaded
embed_module.embed(sys.argv[1], sys.argv[2], sys.argv[3], progress=False, device="cpu",
                   duplicate_ids="rename", chunk_size=int(sys.argv[5]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"after_load": start["rss"], "peak": peak, "end": rss()}))
"""


def first_records(folder: Path, records: int) -> Path:
    fasta = folder / f"first{records}.fasta"
    with open(CORPUS) as source, open(fasta, "w") as sink:
        seen = 0
        for line in source:
            seen += line.startswith(">")
            if seen > records:
                break
            sink.write(line)
    return fasta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 5000, 24874])
    parser.add_argument("--modes", nargs="+", default=["trim only", "now"], choices=["none", "trim only", "now"])
    parser.add_argument("--chunk_sizes", type=int, nargs="*", default=[1000], help="extra 'now' rows")
    args = parser.parse_args()
    import protconv
    from protconv.hub import save_hub_folder
    from protconv.inference.embed import DEFAULT_CHUNK_SIZE, ONEDNN_CACHE

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config = protconv.ConvConfig(hidden_size=32, intermediate_size=16, num_hidden_layers=2, max_dilation=4)
        model = save_hub_folder(protconv.ConvForMaskedLM(config).eval(), protconv.build_tokenizer(), folder / "m")
        print("| proteins | mode | chunk_size | RSS after load (MiB) | peak RSS (MiB) | growth (MiB) |")
        print("|---|---|---|---|---|---|")
        for records in args.records:
            fasta = first_records(folder, records)
            runs = [(mode, DEFAULT_CHUNK_SIZE) for mode in args.modes] + [("now", size) for size in args.chunk_sizes]
            for mode, chunk_size in runs:
                output = folder / f"{records}-{len(list(folder.glob('*.h5')))}.h5"
                command = [sys.executable, "-c", CHILD, str(model), str(fasta), str(output), mode, str(chunk_size)]
                # oneDNN's own default where the code before is measured (embed only sets an unset variable)
                env = {**os.environ, ONEDNN_CACHE: "1024"} if mode != "now" else os.environ
                done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
                found = json.loads(done.stdout)
                growth = found["peak"] - found["after_load"]
                print(
                    f"| {records} | {mode} | {chunk_size} | {found['after_load']:.0f} | {found['peak']:.0f} "
                    f"| {growth:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
