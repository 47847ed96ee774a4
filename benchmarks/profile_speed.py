"""Profile computation: speed on a deep synthetic alignment and a real one, and agreement with HH-suite.

1. Speed. A seeded synthetic family of 10,000 members x 1,000 match columns (a random root mutated per member:
   substitutions, deletion runs, lower-case insertions) is written as A3M to a temporary file, then read and
   profiled; the real 1,303-member HHblits A3M from the shared data folder likewise. Median of ``--repeats``.
2. Agreement. The profile computed from ``hhsuite_query.a3m`` is compared with the match-state emissions of
   ``hhsuite_query.hhm`` (HH-suite's own profile of that query): mean per-column KL(hhm || ours) in nats and
   the fraction of columns whose argmax residue agrees, for each prior. The .hhm holds HH-suite's weighted
   frequencies *without* pseudocounts, so stronger priors cost KL by construction; "frequencies" (no prior)
   is listed for the argmax and over the columns where its KL is finite.

    .venv/bin/python benchmarks/profile_speed.py [--members 10000] [--columns 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from protconv.data.msa import Alignment, read_a3m
from protconv.data.profile_files import read_hhm_profile
from protconv.data.profiles import (
    BACKGROUND,
    compute_profile,
    henikoff_weights,
    sequence_targets,
    weighted_frequencies,
)
from protconv.modeling.vocabulary import STANDARD_AMINO_ACIDS

ROOT = Path(__file__).resolve().parents[1]
SHARED_A3M = ROOT.parent / "shared" / "data" / "msa" / "hhblits_uniclust_2017_10_1a3a_1_A.a3m"
QUERY_A3M = ROOT / "tests" / "data" / "msa" / "hhsuite_query.a3m"
QUERY_HHM = ROOT / "tests" / "data" / "msa" / "hhsuite_query.hhm"
LETTERS = np.frombuffer(STANDARD_AMINO_ACIDS.encode(), dtype=np.uint8)


def synthetic_a3m(path: Path, members: int, columns: int, seed: int = 0) -> None:
    """Write a seeded A3M family: each member substitutes ~30% of the root, deletes ~10% (in runs of 1-10) and
    carries a lower-case insertion after ~1% of its match columns."""
    rng = np.random.default_rng(seed)
    root = rng.choice(20, size=columns, p=BACKGROUND)
    rows = np.tile(root, (members, 1))
    substitute = rng.random((members, columns)) < 0.3
    rows[substitute] = rng.choice(20, size=int(substitute.sum()), p=BACKGROUND)
    text = LETTERS[rows]
    starts = rng.random((members, columns)) < 0.02
    run = rng.integers(1, 11, size=(members, columns))
    for offset in range(10):  # deletion runs: a start at j with length r deletes j..j+r-1
        shifted = np.zeros_like(starts)
        shifted[:, offset:] = starts[:, : columns - offset] & (run[:, : columns - offset] > offset)
        text[shifted] = ord("-")
    inserts = rng.random((members, columns)) < 0.01
    with open(path, "w", encoding="ascii") as handle:
        for i in range(members):
            row = text[i].tobytes().decode("ascii")
            positions = np.flatnonzero(inserts[i])
            if positions.size:
                pieces, last = [], 0
                for position in positions:
                    insert = LETTERS[rng.choice(20, size=int(rng.integers(1, 4)))].tobytes().decode().lower()
                    pieces += [row[last : position + 1], insert]
                    last = position + 1
                row = "".join(pieces) + row[last:]
            handle.write(f">member_{i}\n{row}\n")


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed_rows(label: str, path: Path, repeats: int) -> list[str]:
    alignment = read_a3m(path)
    timings = {
        "read_a3m": median_seconds(lambda: read_a3m(path), repeats),
        "henikoff_weights": median_seconds(lambda: henikoff_weights(alignment), repeats),
        "compute_profile (background)": median_seconds(lambda: compute_profile(alignment), repeats),
        "compute_profile (dirichlet)": median_seconds(lambda: compute_profile(alignment, prior="dirichlet"), repeats),
    }
    profile = compute_profile(alignment)
    timings["sequence_targets"] = median_seconds(lambda: sequence_targets(alignment, profile), repeats)
    shape = f"{len(alignment):,} x {alignment.n_columns:,}"
    return [f"| {label} | {shape} | {step} | {seconds:.3f} |" for step, seconds in timings.items()]


def kl_per_column(target: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """KL(target || ours) per row in nats; inf where ours is 0 but the target is not."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(target > 0, target * np.log(target / ours), 0.0)
    return terms.sum(axis=1)


def agreement_rows(alignment: Alignment, hhm: np.ndarray) -> list[str]:
    candidates = {
        "frequencies (no prior)": weighted_frequencies(alignment),
        "background, a = 0.5": compute_profile(alignment, pseudocount_weight=0.5).probabilities,
        "background, a = 1.5 (default)": compute_profile(alignment).probabilities,
        "background, a = 3": compute_profile(alignment, pseudocount_weight=3.0).probabilities,
        "dirichlet (Blocks9)": compute_profile(alignment, prior="dirichlet").probabilities,
    }
    rows = []
    for label, ours in candidates.items():
        kl = kl_per_column(hhm, ours)
        finite = np.isfinite(kl)
        note = "" if finite.all() else f" ({int((~finite).sum())} columns infinite, excluded)"
        argmax = float(np.mean(hhm.argmax(axis=1) == ours.argmax(axis=1)))
        rows.append(f"| {label} | {kl[finite].mean():.3f}{note} | {argmax:.3f} |")
    return rows


def hhm_provenance(path: Path, alignment: Alignment) -> str:
    """The .hhm's FILT line and how many of the member names its SEQ section displays occur in the A3M."""
    lines = path.read_text().splitlines()
    filt = next((line[4:].strip() for line in lines if line.startswith("FILT")), "no FILT line")
    shown = [line[1:].split()[0] for line in lines[: lines.index("#")] if line.startswith(">")]
    shown = [name for name in shown if name != "Consensus" and not name.startswith(("ss_", "sa_"))]
    present = sum(name in set(alignment.names) for name in shown)
    return f"FILT: {filt}; {present} of the {len(shown)} members its SEQ section shows are in the A3M"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--columns", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--real-a3m", type=Path, default=SHARED_A3M)
    args = parser.parse_args()

    print("## Speed (median seconds)\n\n| alignment | members x columns | step | seconds |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        synthetic = Path(folder) / "synthetic.a3m"
        start = time.perf_counter()
        synthetic_a3m(synthetic, args.members, args.columns)
        generated = time.perf_counter() - start
        for row in speed_rows("synthetic A3M", synthetic, args.repeats):
            print(row)
    if args.real_a3m.exists():
        for row in speed_rows(args.real_a3m.name, args.real_a3m, args.repeats):
            print(row)
    else:
        print(f"| {args.real_a3m} | missing | - | - |")
    print(f"\n(writing the synthetic A3M took {generated:.1f} s, not counted)")

    alignment = read_a3m(QUERY_A3M)
    hhm = read_hhm_profile(QUERY_HHM)
    assert hhm.sequence == alignment.sequences[0], "HHM match states are not the A3M query's residues"
    assert hhm.probabilities.shape[0] == alignment.n_columns
    query = np.array([STANDARD_AMINO_ACIDS.index(residue) for residue in alignment.sequences[0]])
    print(
        f"\n## Agreement with {QUERY_HHM.name} ({alignment.n_columns} match states = the query's residues; "
        f"{len(alignment)} A3M members)\n\n| profile from {QUERY_A3M.name} | mean KL(hhm ‖ ours), nats | "
        "argmax agrees |\n|---|---|---|"
    )
    for row in agreement_rows(alignment, hhm.probabilities):
        print(row)
    print(
        f"\nNeff: ours {compute_profile(alignment).neff:.2f}, the .hhm's NEFF line {hhm.neff}. "
        f"The .hhm's argmax is the query residue in {np.mean(hhm.probabilities.argmax(axis=1) == query):.3f} "
        f"of columns, our frequencies' in {np.mean(weighted_frequencies(alignment).argmax(axis=1) == query):.3f}."
    )
    print(f"The .hhm's {hhm_provenance(QUERY_HHM, alignment)}.")


if __name__ == "__main__":
    main()
