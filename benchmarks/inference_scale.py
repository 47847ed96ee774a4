"""embed on 2 processes against 1 (torchrun, gloo, one thread per process), the merge step's share of the run, peak
memory per process, and the token plan's balance.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/inference_scale.py --records 1000 5000 24874

Balance: the plan of ``protconv.inference.distributed.plan_chunks`` simulated on the lengths of the shared
24,874-protein FASTA at 2, 8 and 64 ranks, for the default token budget and a smaller one, with whole batches and
with ``split=True`` (row slices of a batch at its padded width). Slices: whether such a slice, padded to its
batch's width, embeds the batch's float bits (Conv and Performer, batches of the corpus, slices of 2 to 11 rows,
and the same slices at their own width for contrast).

Runs: ``protconv.embed`` (a tiny random Conv, ``include=mean``) on the first N proteins, in one process and in 2
(``torchrun --standalone`` of this script's ``--worker``): each process reports the seconds of its ``embed`` call,
the seconds rank 0 spent merging the shards (``_merge_shards`` for a killed run's, ``_merge_written`` for this
run's, timed from outside) and its peak resident size
(``ru_maxrss``). Per-process throughput at 2 / at 1 is (records / time / 2) / (records / time), from the
``embed`` call's time (the launch and imports excluded) and from the wall time of the command. The machine is
shared: ``uptime`` is printed before and after.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from protconv.data.fasta import FastaRecord, read_fasta
from protconv.inference.distributed import imbalance, pad_to_width, plan_chunks, rank_tokens

CORPUS = Path("/work/shared/data/corpus/structural_proteins.fasta")


def balance(lengths: list[int]) -> None:
    for budget in (16384, 4096):
        for split in (False, True):
            figures = []
            for ranks in (2, 8, 64):
                plan = plan_chunks(lengths, 10_000, budget, 2, ranks, split)
                figures.append(f"{ranks} ranks {imbalance(rank_tokens(plan, ranks)):.3f}")
            batches = sum(len(b) for b in plan_chunks(lengths, 10_000, budget, 2, 64, split))
            print(f"budget {budget}, split={split}: " + ", ".join(figures) + f" ({batches} pieces at 64 ranks)")


class _Padded:
    """An encoder whose batches are padded to ``width`` tokens."""

    def __init__(self, encoder, width: int) -> None:
        self.encoder, self.width, self.framing, self.tokenizer = encoder, width, encoder.framing, encoder.tokenizer

    def __call__(self, sequences, device="cpu"):
        return pad_to_width(self.encoder(sequences, device), self.width, self.tokenizer.pad_token_id)


def slice_bits(records: list[FastaRecord]) -> None:
    import torch

    import protconv
    from protconv.inference.common import plan_batches
    from protconv.inference.embed import _embed_batch
    from protconv.tokenization.encoding import SequenceEncoder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    records = records[:3000]
    batches = plan_batches([len(r.sequence) for r in records], 16384, 2)
    encoder = SequenceEncoder(protconv.build_tokenizer())
    models = {
        "Conv 64/32x4": protconv.ConvModel(
            protconv.ConvConfig(hidden_size=64, intermediate_size=32, num_hidden_layers=4)
        ),
        "Performer 32x2": protconv.PerformerModel(
            protconv.PerformerConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                nb_features=32,
                max_position_embeddings=4096,
            )
        ),
    }
    cpu, layers, include = torch.device("cpu"), ("last", "1"), ("mean", "per_residue")
    for name, network in models.items():
        network.eval()
        same = {True: 0, False: 0}
        narrow_same = 0
        for number in (3, 10, 25, len(batches) - 2):
            members = [records[i] for i in batches[number]]
            whole = _embed_batch(network, encoder, members, layers, include, cpu)
            padded = _Padded(encoder, len(members[0].sequence) + 2)
            for size in range(2, min(12, len(members))):
                for start in (0, len(members) // 2, len(members) - size):
                    part = members[start : start + size]
                    for chosen, flag in ((padded, True), (encoder, False)):
                        found = _embed_batch(network, chosen, part, layers, include, cpu)
                        equal = all(
                            np.array_equal(found[item][row], whole[item][start + row])
                            for item in include
                            for row in range(size)
                        )
                        if flag:
                            same[equal] += 1
                        elif equal:
                            narrow_same += 1
        total = same[True] + same[False]
        print(f"slices, {name}: {same[True]}/{total} padded slices give the batch's bits, {narrow_same}/{total} "
              "at their own width")  # fmt: skip


def tiny_model(folder: Path) -> Path:
    import protconv
    from protconv.hub import save_hub_folder

    model = protconv.ConvForMaskedLM(protconv.ConvConfig(hidden_size=64, intermediate_size=32, num_hidden_layers=4))
    return save_hub_folder(model.eval(), protconv.build_tokenizer(), folder / "model")


def _timed(function, total: list[float]):
    """``function``, its seconds added to ``total[0]``."""

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - started

    return timed


def worker(model: str, fasta: str, output: str) -> None:
    """One process of a run: embed, then a JSON file beside OUTPUT (rank, embed seconds, merge seconds, peak RSS)."""
    embed_module = importlib.import_module("protconv.inference.embed")  # the module (the package exports embed())
    merging = [0.0]
    for name in ("_merge_shards", "_merge_written"):  # a killed run's shards (checked), this run's (copied)
        setattr(embed_module, name, _timed(getattr(embed_module, name), merging))
    result = embed_module.embed(model, fasta, output, unknown="X", duplicate_ids="rename", progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"rank": int(os.environ.get("RANK", "0")), "seconds": result.seconds, "merge": merging[0]}
    result_file = Path(f"{output}.result-{report['rank']}.json")  # a file per process: their stdout lines can mix
    result_file.write_text(json.dumps({**report, "peak_rss_mib": round(peak, 1)}))


def launch(processes: int, model: Path, fasta: Path, output: Path) -> tuple[float, list[dict]]:
    script = [str(Path(__file__).resolve()), "--worker", str(model), str(fasta), str(output)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   *script]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    reports = [json.loads(path.read_text()) for path in output.parent.glob(f"{output.name}.result-*.json")]
    return wall, sorted(reports, key=lambda r: r["rank"])


def score_ratio() -> None:
    """The hook for ``score`` at 2 processes / 1: ``score`` on N ranks is helper scoredist's (not in this branch)."""
    from protconv.inference import score

    if not hasattr(score, "detect_ranks"):
        print("score: not measured (score on N ranks is not in this branch)")
        return
    print("score: runs on N ranks in this branch; its 2/1 measurement is still to be added here")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, nargs="*", default=[1000])
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "FASTA", "OUTPUT"))
    parser.add_argument("--skip-slices", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    print("before:", uptime())
    records = list(read_fasta(CORPUS, unknown="X"))
    balance([len(record.sequence) for record in records])
    if not args.skip_slices:
        slice_bits(records)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = tiny_model(folder)
        for count in args.records:
            fasta = folder / f"subset-{count}.fasta"
            fasta.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in records[:count]))
            one_wall, (one,) = launch(1, model, fasta, folder / f"one-{count}.h5")
            two_wall, two = launch(2, model, fasta, folder / f"two-{count}.h5")
            slowest = max(r["seconds"] for r in two)
            print(
                f"{count} records: 1 process {one['seconds']:.1f}s (wall {one_wall:.1f}s), 2 processes "
                f"{slowest:.1f}s (wall {two_wall:.1f}s); per-process throughput 2/1 = "
                f"{one['seconds'] / slowest / 2:.2f} "
                f"(wall {one_wall / two_wall / 2:.2f}); merge {two[0]['merge']:.2f}s = "
                f"{100 * two[0]['merge'] / two[0]['seconds']:.1f}% of rank 0's run; peak RSS MiB: 1 process "
                f"{one['peak_rss_mib']:.0f}, 2 processes " + "/".join(f"{r['peak_rss_mib']:.0f}" for r in two)
            )
    score_ratio()
    print("after:", uptime())


if __name__ == "__main__":
    main()
