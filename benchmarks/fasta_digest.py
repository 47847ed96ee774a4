"""The cost of the FASTA content check at every open (issue 21, item 4): a full SHA-256 of the file.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fasta_digest.py --gigabytes 1

Writes a synthetic corpus of random proteins (lengths 50-1000) of about ``--gigabytes`` GB under ``--folder``
(default: a new folder in /tmp), indexes it once, then times what every later run pays at open: re-opening the
cached index (which includes the SHA-256 of the whole file), the SHA-256 alone (cold and warm page cache cannot be
told apart here: the file was just written), and the record digest that checkpoints store. The folder is deleted
afterwards. The decision rule of the issue: keep the full check as the default while it costs under ~2 s per GB.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from protconv.data.fasta_index import open_index
from protconv.staging import content_digest

_RESIDUES = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)


def write_corpus(path: Path, gigabytes: float, seed: int = 0) -> int:
    """Random proteins, 60 residues a line, until the file holds ``gigabytes`` GB; returns the record count."""
    generator = np.random.default_rng(seed)
    target, written, records = int(gigabytes * 1e9), 0, 0
    with open(path, "wb") as handle:
        while written < target:
            lengths = generator.integers(50, 1001, size=20_000)
            residues = _RESIDUES[generator.integers(0, 20, size=int(lengths.sum()))].tobytes()
            chunks, at = [], 0
            for number, length in enumerate(lengths.tolist(), start=records):
                sequence = residues[at : at + length]
                at += length
                lines = b"\n".join(sequence[i : i + 60] for i in range(0, length, 60))
                chunks.append(b">r%d synthetic\n%s\n" % (number, lines))
            block = b"".join(chunks)
            handle.write(block)
            written += len(block)
            records += len(lengths)
    return records


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--folder", type=Path, default=None, help="where to write the corpus (deleted after)")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fasta_digest-", dir=options.folder))
    try:
        fasta = folder / "corpus.fasta"
        write, records = timed(lambda: write_corpus(fasta, options.gigabytes))
        size = fasta.stat().st_size / 1e9
        build, index = timed(lambda: open_index(fasta, folder / "cache"))
        index.close()
        reopen, index = timed(lambda: open_index(fasta, folder / "cache"))
        sha = min(timed(lambda: content_digest(fasta))[0] for _ in range(3))
        record_digest = timed(index.digest)[0]
        index.close()
        print(f"| {size:.2f} GB synthetic | {records:,} | {write:.1f} s | {build:.1f} s | {reopen:.2f} s | "
              f"{sha:.2f} s ({sha / size:.2f} s/GB) | {record_digest * 1000:.0f} ms |")  # fmt: skip
        verdict = "keep the full SHA-256 (under ~2 s per GB)" if sha / size < 2 else "over ~2 s per GB: cheaper check"
        print(f"decision: {verdict}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
