"""SIGKILL ``protconv embed`` at random moments, rerun it until it finishes, and compare the final file with an
uninterrupted run's, dataset by dataset.

    PYTHONPATH=src .venv/bin/python benchmarks/kill_sweep_embed.py --kills 10 --records 600

A tiny random-weight Conv model embeds the first ``--records`` proteins of the shared 24,874-protein FASTA
(``include=mean,per_residue``, ``--chunk`` records per read). Every record runs alone (``max_tokens_per_batch=1``):
a batch's padding may change float rounding, so only equal shapes can be compared bit for bit across runs that
batch different leftovers. Each kill lands at a uniform delay between the moment the reference run created its
file (after imports and model loading) and its wall time; the
next start is the same command (it continues the file). Counted: kills, resumed starts, starts that failed, whether
the final datasets and attributes equal the reference bit for bit, and leftovers (lock or temporary files).
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from embed_memory import first_records  # the corpus head, as embed_memory reads it

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys
from protconv.inference import embed
embed(sys.argv[1], sys.argv[2], sys.argv[3], include="mean,per_residue", max_tokens_per_batch=1,
      chunk_size=int(sys.argv[4]), progress=False, device="cpu")
"""


def make_inputs(folder: Path, records: int) -> tuple[Path, Path]:
    import protconv
    from protconv.hub import save_hub_folder

    config = protconv.ConvConfig(hidden_size=32, intermediate_size=16, num_hidden_layers=2, max_dilation=4)
    model = save_hub_folder(protconv.ConvForMaskedLM(config).eval(), protconv.build_tokenizer(), folder / "model")
    return model, first_records(folder, records)


def start(model: Path, fasta: Path, output: Path, chunk: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(model), str(fasta), str(output), str(chunk)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def contents(path: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    with h5py.File(path) as store:
        found["/"] = {k: v for k, v in store.attrs.items() if k != "protconv_version"}
        for name in store:
            group = store[name]
            found[name] = ({k: group.attrs[k] for k in group.attrs}, {k: group[k][()] for k in group})
    return found


def equal(a: dict[str, object], b: dict[str, object]) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        if key == "/":
            if {k: str(v) for k, v in a[key].items()} != {k: str(v) for k, v in b[key].items()}:  # type: ignore[union-attr]
                return False
            continue
        (attrs_a, data_a), (attrs_b, data_b) = a[key], b[key]  # type: ignore[misc]
        if {k: str(v) for k, v in attrs_a.items()} != {k: str(v) for k, v in attrs_b.items()}:
            return False
        if data_a.keys() != data_b.keys() or any(not np.array_equal(data_a[k], data_b[k]) for k in data_a):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model, fasta = make_inputs(folder, args.records)
        reference = folder / "reference.h5"
        began = time.perf_counter()
        first = start(model, fasta, reference, args.chunk)
        while not reference.exists() and first.poll() is None:
            time.sleep(0.02)
        created = time.perf_counter() - began  # imports and model loading come first: kills aim after them
        if first.wait() != 0:
            raise SystemExit("the reference run failed")
        wall = time.perf_counter() - began
        output = folder / "killed.h5"
        kills = resumes = failures = 0
        while kills < args.kills:
            child = start(model, fasta, output, args.chunk)
            resumes += output.exists()
            try:
                child.wait(timeout=rng.uniform(created, wall))
                failures += child.returncode != 0
                output.unlink()  # finished before the kill: start again for another kill
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                child.wait()
                kills += 1
        child = start(model, fasta, output, args.chunk)
        resumes += output.exists()
        _, error = child.communicate()
        failures += child.returncode != 0
        identical = child.returncode == 0 and equal(contents(reference), contents(output))
        leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
        print(
            f"records={args.records} reference_wall={wall:.1f}s file_created_at={created:.1f}s "
            f"kills={kills} resumed_starts={resumes} "
            f"failed_starts={failures} bit_identical={identical} leftovers={leftovers or 'none'}"
        )
        if error.strip() and child.returncode:
            print(error.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
