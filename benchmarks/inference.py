"""Inference benchmarks (embed, score), measured as ratios within one run so that machine load cancels out.

(a) ``embed`` throughput against the bare model forward on the same token-budget batches (same tokens, already
    tokenised, no output), for a carp-600k-shaped Conv (CARP tokenizer, no <cls>/<eos>) and a performer-small;
    ``embed`` is timed end to end (FASTA validation pass, model load, tokenisation, HDF5 writes). Goal >= 0.9x.
(b) ``score --method masked-marginal`` on all 19 x 263 single mutants of the BLAT_ECOLX wild type (carp-600k
    shape, random weights: only the time matters).
(c) Spearman of masked-marginal scores with the ``2500`` column of the BLAT_ECOLX DMS file: a random-weight
    model (a sanity check, expect about 0) and, with ``--model FOLDER``, a pretrained masked LM.
(d) with ``--kill-trials N``: N embed runs (per_residue, in a subprocess) killed with SIGKILL at a random moment
    of their batch loop and resumed; counts files left unreadable and checks the finished file against an
    uninterrupted run.

    .venv/bin/python benchmarks/inference.py --out benchmarks/results/inference.md [--model FOLDER]

Random weights are seeded; timings are the best of ``--repeats`` alternating runs.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import transformers

import protconv
from protconv.data import read_fasta
from protconv.hub import save_hub_folder
from protconv.inference import embed, plan_batches, score
from protconv.inference.common import load_model
from protconv.model_source import load_tokenizer
from protconv.tokenization.encoding import SequenceEncoder

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPU cores visible, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, h5py {h5py.__version__}, Python {platform.python_version()}"
    )


def save_random(model: torch.nn.Module, folder: Path, carp_framing: bool) -> Path:
    tokenizer = protconv.build_tokenizer(add_cls=not carp_framing, add_eos=not carp_framing)
    return save_hub_folder(model.eval(), tokenizer, folder, overwrite=True)


def subset_fasta(source: Path, count: int, out: Path) -> tuple[Path, int]:
    residues = 0
    with open(out, "w") as handle:
        for index, record in enumerate(read_fasta(source)):
            if index == count:
                break
            handle.write(f">{record.id}\n{record.sequence}\n")
            residues += len(record.sequence)
    return out, residues


def bare_forward_seconds(folder: Path, fasta: Path, max_tokens: int) -> float:
    """The model alone on embed's batches (pre-tokenised, timing the forwards only)."""
    model = transformers.AutoModel.from_pretrained(folder).eval()
    tokenizer = load_tokenizer(str(folder))
    encoder = SequenceEncoder(tokenizer)
    sequences = [record.sequence for record in read_fasta(fasta)]
    batches = [
        encoder([sequences[i] for i in batch])
        for batch in plan_batches([len(s) for s in sequences], max_tokens, encoder.special_tokens)
    ]
    start = time.perf_counter()
    with torch.inference_mode():
        for inputs in batches:
            model(**inputs)
    return time.perf_counter() - start


def embed_seconds(folder: Path, fasta: Path, max_tokens: int, include: str, out: Path) -> tuple[float, float]:
    """``embed`` end to end, and the seconds its model forwards took inside that same run (timed by hooks)."""
    out.unlink(missing_ok=True)
    forward = {"seconds": 0.0, "start": 0.0}

    def timed_load(*args, **kwargs):
        network, fingerprint = load_model(*args, **kwargs)
        network.register_forward_pre_hook(lambda *_: forward.update(start=time.perf_counter()))
        network.register_forward_hook(
            lambda *_: forward.update(seconds=forward["seconds"] + time.perf_counter() - forward["start"])
        )
        return network, fingerprint

    module = importlib.import_module("protconv.inference.common")
    module.load_model, original = timed_load, module.load_model
    try:
        start = time.perf_counter()
        embed(folder, fasta, out, include=include, max_tokens_per_batch=max_tokens, progress=False)
        return time.perf_counter() - start, forward["seconds"]
    finally:
        module.load_model = original


def all_single_mutants(wildtype: str, offset: int, out: Path) -> Path:
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mutant"])
        for index, wt in enumerate(wildtype):
            for mt in AMINO_ACIDS:
                if mt != wt:
                    writer.writerow([f"{wt}{index + offset}{mt}"])
    return out


_KILLED_CHILD = """
import sys
from protconv.inference import embed
embed(sys.argv[1], sys.argv[2], sys.argv[3], include="per_residue,mean", max_tokens_per_batch=4096, progress=False)
"""


def kill_sweep(folder: Path, fasta: Path, trials: int, work: Path, seed: int = 0) -> dict:
    """Kill embed runs with SIGKILL at random moments, resume each, compare with an uninterrupted run."""
    rng = random.Random(seed)
    reference = work / "reference.h5"
    embed(folder, fasta, reference, include="per_residue,mean", max_tokens_per_batch=4096, progress=False)
    with h5py.File(reference) as store:
        expected = {name: store[name]["mean"][()] for name in store}
    unreadable = resumed = mismatched = 0
    present: list[int] = []  # groups in the file right after each kill (-1: could not be opened)
    for trial in range(trials):
        output = work / f"killed{trial}.h5"
        child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(folder), str(fasta), str(output)])
        while not output.exists() and child.poll() is None:  # the file appears once the model is loaded
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 8.0))  # then a random moment of the batch loop (writes included)
        child.send_signal(signal.SIGKILL)
        child.wait()
        try:
            with h5py.File(output, "r") as store:
                present.append(len(store))
        except OSError:
            present.append(-1)
        try:
            embed(folder, fasta, output, include="per_residue,mean", max_tokens_per_batch=4096, progress=False)
        except (OSError, ValueError) as error:
            unreadable += 1
            print(f"trial {trial}: not resumable: {error}", file=sys.stderr)
            continue
        resumed += 1
        with h5py.File(output) as store:
            got = {name: store[name]["mean"][()] for name in store}
        if sorted(got) != sorted(expected) or any(
            not np.allclose(got[name], expected[name], atol=1e-5) for name in expected
        ):
            mismatched += 1
        output.unlink()
    return {
        "trials": trials,
        "resumed": resumed,
        "unreadable": unreadable,
        "mismatched": mismatched,
        "present": present,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inference.md"))
    parser.add_argument("--model", help="a pretrained masked-LM folder (or Hub id) for (c)")
    parser.add_argument("--records", type=int, default=1500, help="proteins of the corpus for (a)")
    parser.add_argument("--max-tokens", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kill-trials", type=int, default=0)
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args()

    torch.manual_seed(0)
    start_load = os.getloadavg()[0]
    lines = [f"# Inference benchmarks\n\nMachine: {machine()}.\n"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        carp = save_random(
            protconv.ConvForMaskedLM(protconv.ConvConfig.from_preset("carp-600k")), work / "carp600k", True
        )
        performer = save_random(
            protconv.PerformerForMaskedLM(protconv.PerformerConfig.from_preset("performer-small")),
            work / "performer",
            False,
        )
        fasta, residues = subset_fasta(args.data / "corpus/structural_proteins.fasta", args.records, work / "p.fasta")

        lines.append(
            f"## (a) embed throughput vs the bare model forward\n\n{args.records} proteins of "
            f"corpus/structural_proteins.fasta ({residues:,} residues), max_tokens_per_batch {args.max_tokens}, "
            f"float32, CPU; best of {args.repeats} alternating runs. embed is end to end (validation pass, model "
            "load, tokenisation, HDF5 writes); the bare forward runs the same batches already tokenised.\n"
        )
        lines.append(
            "| model | include | bare forward (s) | embed (s) | embed residues/s | embed / bare throughput | "
            "forward share of embed's own run |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for name, folder in (("carp-600k (CARP tokenizer)", carp), ("performer-small", performer)):
            for include in ("mean", "mean,per_residue"):
                bare, runs = [], []
                for _ in range(args.repeats):
                    bare.append(bare_forward_seconds(folder, fasta, args.max_tokens))
                    runs.append(embed_seconds(folder, fasta, args.max_tokens, include, work / "e.h5"))
                full, inside = min(runs)
                lines.append(
                    f"| {name} | {include} | {min(bare):.1f} | {full:.1f} | {residues / full:,.0f} | "
                    f"{min(bare) / full:.2f}x | {inside / full:.2f} |"
                )
                print(lines[-1], flush=True)
        lines.append(
            "\nThe last column times the model forwards inside the embed run itself (forward hooks), so it is immune "
            "to load changes between runs; the embed/bare column compares separate runs.\n"
        )

        wildtype = next(iter(read_fasta(args.data / "variants/BLAT_ECOLX_wildtype.fasta"))).sequence
        singles = all_single_mutants(wildtype, 24, work / "singles.csv")
        start = time.perf_counter()
        result = score(carp, singles, work / "singles_out.csv", sequence=wildtype, offset=24, progress=False)
        seconds = time.perf_counter() - start
        lines.append(
            f"\n## (b) score, masked-marginal, all single mutants of BLAT_ECOLX\n\n{len(result.scores)} variants "
            f"(19 x {len(wildtype)}), carp-600k shape (random weights), CARP tokenizer, max_tokens_per_batch 16384: "
            f"{result.forwards} masked forwards (one per position), **{seconds:.1f} s** end to end "
            f"({len(result.scores) / seconds:,.0f} variants/s).\n"
        )
        print(lines[-1], flush=True)

        dms = args.data / "variants/BLAT_ECOLX_Ranganathan2015.csv"
        rows = [("carp-600k, random weights", str(carp))] + (
            [("pretrained: " + args.model, args.model)] if args.model else []
        )
        lines.append(
            "## (c) Spearman with the DMS (BLAT_ECOLX_Ranganathan2015.csv, column 2500, offset 24)\n\n"
            "| model | method | Spearman | rows | seconds |\n|---|---|---|---|---|"
        )
        for label, model in rows:
            for method in ("masked-marginal", "wildtype-marginal"):
                start = time.perf_counter()
                result = score(
                    model,
                    dms,
                    work / "dms_out.csv",
                    wildtype=args.data / "variants/BLAT_ECOLX_wildtype.fasta",
                    offset=24,
                    method=method,
                    score_column="2500",
                    progress=False,
                )
                lines.append(
                    f"| {label} | {method} | {result.spearman:.3f} | {result.spearman_rows} | "
                    f"{time.perf_counter() - start:.1f} |"
                )
                print(lines[-1], flush=True)
        if not args.model:
            lines.append("\nNo pretrained model folder was available here (pass `--model FOLDER` to add one).")

        if args.kill_trials:
            sweep_fasta, _ = subset_fasta(args.data / "corpus/structural_proteins.fasta", 1500, work / "k.fasta")
            found = kill_sweep(carp, sweep_fasta, args.kill_trials, work)
            lines.append(
                f"\n## (d) kill and resume\n\n{found['trials']} embed runs (1500 proteins, mean + per_residue, "
                f"carp-600k) killed with SIGKILL at a random moment 0-8 s after the output file appeared, then re-run: "
                f"{found['resumed']} resumed and finished, {found['unreadable']} left a file that could not be "
                f"continued, {found['mismatched']} "
                "finished with values different from an uninterrupted run (atol 1e-5). Groups in the file right "
                f"after each kill: {found['present']} (of 1500).\n"
            )
            print(lines[-1], flush=True)
    lines.append(
        f"\nLoad average (1 min) at the start and the end of this run: {start_load:.1f} and {os.getloadavg()[0]:.1f} "
        "(a shared machine: other jobs compete for the cores, which is why every ratio is taken within one run)."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
