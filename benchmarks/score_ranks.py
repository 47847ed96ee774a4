"""score on 2 processes against 1 (torchrun, gloo, one thread per process): per-process throughput 2 / 1.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/score_ranks.py --residues 600
    PYTHONPATH=src .venv/bin/python benchmarks/score_ranks.py --balance_only   # the simulated shares, no model
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/score_ranks.py --check_slices --residues 263

The work: every single substitution of a wild type (the first protein of the shared corpus with at least
``--residues`` residues, cut to that length) in one CSV, scored by ``protconv score`` with ``masked-marginal`` (one
masked forward per position: ``residues`` rows) and ``pseudo-likelihood`` on the first ``--pll_variants`` of them
(``residues`` rows per distinct sequence), with a small random Conv. Per-process throughput at 2 / at 1 is
(rows / time / 2) / (rows / time) = time at 1 / (2 x time at 2), from the seconds ``score`` reports (model loading
and CSV reading included, interpreter start-up not) and from the wall time of the whole command. The machine is
shared: the figures carry its load. :func:`score_ratio` is what another benchmark can call.

Measured (2 cores, load 0.3-3, 2026-12-06; 1000 residues): masked-marginal (1000 masked rows) reported seconds 3.1 at
1 process, 2.9 at 2 (0.53; model load, CSV and start-up skew dominate 3 s); the forwards alone (timed inside, load
0.1) 2.73 s at 1, 1.56/1.40 s on ranks 1/0 at 2: 0.87. pseudo-likelihood (4000 rows) 12.2 s at 1, 8.7 at 2 (0.70).

Load balance (``--balance_only``, simulated: the shares each rank computes, no model): max rank rows / mean rank
rows of masked-marginal at the default 16,384-token budget, every position masked, before (whole one-process
batches, contiguous per rank) and after (row slices of >= 2 rows when there are under 16 batches per rank):

    residues  batches  ranks  before  after
         263        5      2    1.07   1.01
         263        5      8    1.86   1.03
         263        5     64   14.84   1.46
        1000       63      2    1.01   1.01
        1000       63      8    1.02   1.02
        1000       63     64    1.02   1.02

Which row slices keep a batch's bits (``--check_slices``: every slice size of one default-budget batch, at its
start, middle and end, against the whole batch, one thread; 2026-12-06): 263 residues (61-row batch) and 1000
residues (16-row batch), Conv of 32 and 64 hidden and a 32-hidden Performer: only the 1-row Conv slices differ (a
128-hidden Performer, checked once by hand at 263: none). Hence slices of two rows or more.

263 residues on 64 ranks is 4.1 rows a rank: with slices of two rows or more (a one-row Conv slice changes the
bits) some rank runs 6 rows; the floor at whole rows is 5 (1.22).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from protconv.data.fasta import read_fasta
from protconv.inference.common import DEFAULT_MAX_TOKENS
from protconv.inference.distributed import Ranks, imbalance
from protconv.inference.gather import contiguous_shares
from protconv.inference.score import _Runner

CORPUS = Path("/work/shared/data/corpus/structural_proteins.fasta")
LAUNCHER = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
_REPORTED = re.compile(r" in (\d+\.\d+)s")


def small_model(folder: Path) -> Path:
    import protconv
    from protconv.hub import save_hub_folder

    model = protconv.ConvForMaskedLM(protconv.ConvConfig(hidden_size=64, intermediate_size=32, num_hidden_layers=4))
    return save_hub_folder(model.eval(), protconv.build_tokenizer(), folder / "model")


def scan_csv(path: Path, wildtype: str, limit: int | None = None) -> Path:
    """Every single substitution of ``wildtype`` (the first ``limit``), ProteinGym syntax, numbered from 1."""
    mutants = [f"{wt}{i + 1}{aa}" for i, wt in enumerate(wildtype) for aa in "ACDEFGHIKLMNPQRSTVWY" if aa != wt]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["mutant"], *([m] for m in mutants[:limit])])
    return path


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, the seconds ``score`` reports) of one command, one thread per process."""
    started = time.perf_counter()
    done = subprocess.run(
        command, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    wall = time.perf_counter() - started
    found = _REPORTED.search(done.stdout)
    return wall, float(found.group(1)) if found else wall


def score_ratio(model: Path, variants: Path, wildtype: str, method: str, folder: Path, processes: int = 2) -> str:
    """One line: the times of 1 and ``processes`` processes and the per-process throughput ratio (reported
    seconds, and wall); also checks that both wrote the same bytes."""
    score = ["-m", "protconv", "score", str(model), str(variants)]
    options = ["--sequence", wildtype, "--method", method, "--no_progress"]
    one = timed([sys.executable, *score, str(folder / f"one-{method}.csv"), *options])
    two = timed([*LAUNCHER, f"--nproc-per-node={processes}", *score, str(folder / f"two-{method}.csv"), *options])
    same = (folder / f"one-{method}.csv").read_bytes() == (folder / f"two-{method}.csv").read_bytes()
    return (
        f"{method}: 1 process {one[1]:.1f}s (wall {one[0]:.1f}s), {processes} processes {two[1]:.1f}s (wall "
        f"{two[0]:.1f}s); per-process throughput {processes}/1 = {one[1] / two[1] / processes:.2f} (wall "
        f"{one[0] / two[0] / processes:.2f}); same CSV: {same}"
    )


def simulated_balance(residues: int, world_size: int, max_tokens: int = DEFAULT_MAX_TOKENS) -> tuple[int, float, float]:
    """(one-process batches, imbalance before, imbalance after) of masked-marginal over every position of a wild
    type of ``residues`` residues (plus <cls>/<eos>) on ``world_size`` ranks."""
    batch_size = max(1, max_tokens // (residues + 2))
    sizes = [min(batch_size, residues - start) for start in range(0, residues, batch_size)]
    before = [sum(sizes[i] for i in share) for share in contiguous_shares(sizes, world_size)]
    after = []
    for rank in range(world_size):
        runner = _Runner(None, 0, batch_size, torch.device("cpu"), Ranks(rank, world_size))
        after.append(sum(len(piece) for piece in runner._pieces(residues)))
    assert sum(after) == residues
    return len(sizes), imbalance(before), imbalance(after)


def check_slices(wildtype: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
    """Per small model, the slice sizes whose masked rows differ from the one default-budget batch's."""
    import protconv

    tokenizer = protconv.build_tokenizer()
    ids = tokenizer(wildtype)["input_ids"]
    size = min(len(wildtype), max(1, max_tokens // len(ids)))
    torch.manual_seed(0)
    conv = dict(intermediate_size=16, num_hidden_layers=4)
    performer = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, nb_features=32)
    models = {
        "conv-32": protconv.ConvForMaskedLM(protconv.ConvConfig(hidden_size=32, max_dilation=4, **conv)),
        "conv-64": protconv.ConvForMaskedLM(protconv.ConvConfig(hidden_size=64, **conv)),
        "performer-32": protconv.PerformerForMaskedLM(protconv.PerformerConfig(**performer)),
    }
    lines = []
    for name, model in models.items():
        runner = _Runner(model.eval(), tokenizer.mask_token_id, size, torch.device("cpu"))
        rows = [runner.masked(ids, 1 + i) for i in range(size)]
        whole = runner._log_softmax(rows)
        bad = [
            k
            for k in range(1, size + 1)
            for start in sorted({0, (size - k) // 2, size - k})
            if not torch.equal(runner._log_softmax(rows[start : start + k]), whole[start : start + k])
        ]
        lines.append(f"{name}: batch of {size} rows of {len(ids)} tokens; differing slice sizes {sorted(set(bad))}")
    return lines


def balance_table(lengths: tuple[int, ...] = (263, 1000), world_sizes: tuple[int, ...] = (2, 8, 64)) -> str:
    lines = ["residues  batches  ranks  before  after"]
    for residues in lengths:
        for world_size in world_sizes:
            batches, before, after = simulated_balance(residues, world_size)
            lines.append(f"{residues:8d}  {batches:7d}  {world_size:5d}  {before:6.2f}  {after:5.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residues", type=int, default=600)
    parser.add_argument("--pll_variants", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--balance_only", action="store_true", help="only the simulated shares (no model runs)")
    parser.add_argument("--check_slices", action="store_true", help="which row slice sizes keep the batch's bits")
    args = parser.parse_args()
    print(balance_table())
    if args.balance_only:
        return
    record = next(
        r for r in read_fasta(CORPUS, unknown="X") if len(r.sequence) >= args.residues and "X" not in r.sequence
    )
    wildtype = record.sequence[: args.residues]
    if args.check_slices:
        torch.set_num_threads(1)
        print("\n".join(check_slices(wildtype)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = small_model(folder)
        every = scan_csv(folder / "scan.csv", wildtype)
        few = scan_csv(folder / "few.csv", wildtype, args.pll_variants)
        print(f"wild type {record.id}[:{args.residues}]; {os.cpu_count()} cores")
        for _ in range(args.repeats):
            for method, variants in (("masked-marginal", every), ("pseudo-likelihood", few)):
                print(score_ratio(model, variants, wildtype, method, folder), f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
