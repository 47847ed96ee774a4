"""The pretraining data pipeline at scale: indexed FASTA, global epoch plans, rank-local reads, resume by jumping.

On a generated FASTA of >= 1 GB of real-length proteins (lengths and residues sampled from a real corpus, wrapped
at 60 columns, UniRef-style headers; written under /tmp, never into the repository) it measures:

- the index build (time, bytes per record) and a cached re-open;
- per-rank delivered tokens/s (read, crop, encode, mask: everything up to the tensors) of rank 0 at simulated
  world sizes 1, 8 and 64. Each rank delivers the same number of batches (rank 0's whole share of the epoch at
  world size 64), from the start of the epoch, plan included; the old streaming pipeline (every rank parses the
  whole stream and keeps 1/N) is measured on fewer batches for comparison;
- the peak memory of indexing and of the pipeline (VmRSS and its anonymous part: the memory-mapped file and index
  pages are page cache, shared by every process of a node);
- resume latency, from an empty process state (open the cached index, build the plan) to the first batch, at 90%
  of an epoch and at its start (and the old pipeline's, which re-reads the stream up to the position);
- padding on /work/shared/data/corpus/structural_proteins.fasta (or the shipped 4k slice);
- a shuffle statistic: mean |position difference| of consecutive training records, over the number of records;
  a uniform permutation gives 1/3, the old 10k-record pools give about pool/(3N).

    .venv/bin/python benchmarks/data_pipeline.py [--size_gb 1.05] [--fasta /tmp/protconv-bench/uniref_like.fasta]
        [--skip_baseline]

Torch runs on one thread (as in training_overhead.py): with more threads than free cores the masking's small
tensor operations wait on descheduled OpenMP threads and a batch can take 10 ms instead of 1. The last line is
``per-rank rate ratio ws64/ws1: R``.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from protconv.data.batching import TokenBudgetBatcher, shard
from protconv.data.fasta import read_fasta
from protconv.data.fasta_corpus import FastaCorpus
from protconv.data.fasta_index import open_index
from protconv.data.plans import BatchShape, plan_epoch
from protconv.pretraining.arguments import DataArguments
from protconv.pretraining.pipeline import DataPosition, build_data
from protconv.tokenization import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = Path("/work/shared/data/corpus/structural_proteins.fasta")
SLICE = ROOT / "examples" / "data" / "structural_proteins_4k.fasta.gz"
MAX_LENGTH, MAX_TOKENS = 1024, 8192


class PeakMemory:
    """Highest VmRSS and RssAnon (MiB) of this process while the block runs (sampled every 20 ms)."""

    @staticmethod
    def now() -> tuple[float, float]:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024

    def __enter__(self) -> PeakMemory:
        self.rss = self.anon = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            rss, anon = self.now()
            self.rss, self.anon = max(self.rss, rss), max(self.anon, anon)
            if self._stop.wait(0.02):
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def generate(path: Path, size: int, source: Path, seed: int = 0) -> int:
    """A FASTA of at least ``size`` bytes: lengths drawn from ``source``'s proteins, residues windows of them."""
    proteins = [record.sequence.encode() for record in read_fasta(source)]
    lengths = np.array([len(p) for p in proteins])
    pool = b"".join(proteins)
    rng = np.random.default_rng(seed)
    written = number = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "wb", buffering=1 << 24) as out:
        while written < size:
            parts = []
            for length, offset in zip(
                rng.choice(lengths, 4096).tolist(), rng.integers(0, len(pool) - lengths.max(), 4096).tolist(),
                strict=True,
            ):  # fmt: skip
                residues = pool[offset : offset + length]
                parts.append(b">UniRef50_G%08d Uncharacterized protein n=%d Tax=Bacteria TaxID=2 RepID=G%08d\n"
                             % (number, length % 7 + 1, number))  # fmt: skip
                parts.append(b"\n".join(residues[k : k + 60] for k in range(0, length, 60)) + b"\n")
                number += 1
            blob = b"".join(parts)
            out.write(blob)
            written += len(blob)
    partial.rename(path)
    return number


def arguments(fasta: Path, **changes) -> DataArguments:
    values = dict(train_files=[str(fasta)], validation_fraction=0.02, max_length=MAX_LENGTH,
                  max_tokens_per_batch=MAX_TOKENS, prefetch_batches=0)  # fmt: skip
    values.update(changes)
    return DataArguments(**values)


def deliver(iterator, batches: int) -> tuple[int, float]:
    """(real tokens, seconds) of the first ``batches`` batches of ``iterator`` (timed from its creation)."""
    start, tokens = time.perf_counter(), 0
    for _, tensors in itertools.islice(iterator, batches):
        tokens += int(tensors["attention_mask"].sum())
    return tokens, time.perf_counter() - start


def old_rank_batches(fasta: Path, tokenizer, world_size: int, batches: int) -> tuple[int, float]:
    """The previous pipeline: every rank parses the stream, cuts 10k-record pools and keeps 1/N of the batches."""
    from protconv.data.masking import PretrainingCollator

    collator = PretrainingCollator(tokenizer)
    start, tokens = time.perf_counter(), 0
    batcher = TokenBudgetBatcher(MAX_TOKENS, MAX_LENGTH, 2, 10_000, 0)
    for batch in itertools.islice(shard(batcher.batches(FastaCorpus([fasta])), world_size, 0), batches):
        tokens += int(collator(batch, 0)["attention_mask"].sum())
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fasta", type=Path, default=Path(tempfile.gettempdir()) / "protconv-bench" / "uniref_like.fasta"
    )
    parser.add_argument("--size_gb", type=float, default=1.05)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the rate measurements (best kept)")
    parser.add_argument("--skip_baseline", action="store_true", help="do not time the old streaming pipeline")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = SHARED_CORPUS if SHARED_CORPUS.is_file() else SLICE
    size = int(args.size_gb * 1e9)
    if not args.fasta.is_file() or args.fasta.stat().st_size < size:
        start = time.perf_counter()
        count = generate(args.fasta, size, source)
        print(f"generated {args.fasta}: {args.fasta.stat().st_size / 1e9:.2f} GB, {count:,} records "
              f"in {time.perf_counter() - start:.0f} s")  # fmt: skip
    print(f"corpus: {args.fasta} ({args.fasta.stat().st_size / 1e9:.2f} GB); lengths from {source.name}")
    cache = Path(tempfile.mkdtemp(prefix="protconv-bench-cache-"))
    tokenizer = build_tokenizer()
    rss, anon = PeakMemory.now()
    print(
        f"process memory before any data (python, torch, transformers): VmRSS {rss:,.0f} MiB, anonymous {anon:,.0f} MiB"
    )
    try:
        with PeakMemory() as memory:
            start = time.perf_counter()
            index = open_index(args.fasta, cache)
            built = time.perf_counter() - start
        records = len(index)
        print(f"index build: {built:.1f} s for {args.fasta.stat().st_size / 1e9:.2f} GB ({records:,} records)")
        print(f"index size: {index.nbytes / 1e6:.1f} MB, {index.nbytes / records:.2f} bytes per record")
        print(f"index build peak memory: VmRSS {memory.rss:,.0f} MiB, anonymous {memory.anon:,.0f} MiB")
        start = time.perf_counter()
        open_index(args.fasta, cache)
        print(f"cached index open: {(time.perf_counter() - start) * 1000:.1f} ms")

        # ------------------------------------------------------------- per-rank delivered tokens/s
        data = build_data(arguments(args.fasta), tokenizer, 64, 0, 0, data_cache_dir=cache)
        start = time.perf_counter()
        plan = data.plan(0)
        plan_seconds = time.perf_counter() - start
        share = plan.rounds(64)
        print(f"epoch plan: {len(plan):,} batches of {len(data.train):,} records in {plan_seconds:.2f} s "
              "(the same on every rank)")  # fmt: skip
        with PeakMemory() as memory:  # one process's pipeline: open the index, plan, deliver its share
            data = build_data(arguments(args.fasta), tokenizer, 64, 0, 0, data_cache_dir=cache)
            deliver(data.epoch(DataPosition(0, 0)), share)
        print(f"pipeline peak memory (one process, world size 64): VmRSS {memory.rss:,.0f} MiB, "
              f"anonymous {memory.anon:,.0f} MiB")  # fmt: skip
        rates: dict[int, float] = {}
        steady: dict[int, float] = {}
        pipelines = {
            world_size: build_data(arguments(args.fasta), tokenizer, world_size, 0, 0, data_cache_dir=cache)
            for world_size in (1, 8, 64)
        }
        for round_ in range(args.repeats):  # world sizes interleaved, best of each: the machine is shared
            for world_size in np.roll([1, 8, 64], round_).tolist():
                data = pipelines[world_size]
                data._plan = None  # plan included, as at the start of every epoch
                tokens, seconds = deliver(data.epoch(DataPosition(0, 0)), share)
                rates[world_size] = max(rates.get(world_size, 0.0), tokens / seconds)
                tokens, seconds = deliver(data.epoch(DataPosition(0, 0)), share)
                steady[world_size] = max(steady.get(world_size, 0.0), tokens / seconds)
        for world_size in (1, 8, 64):
            rate, without = rates[world_size], steady[world_size]
            print(f"per-rank delivered tokens/s at world size {world_size}: {rate:,.0f} ({share} batches of rank 0 "
                  f"from the epoch's start, plan included; {without:,.0f} without it)")  # fmt: skip
        if not args.skip_baseline:
            for world_size in (1, 8):
                tokens, seconds = old_rank_batches(args.fasta, tokenizer, world_size, 150)
                print(f"old streaming pipeline, per-rank tokens/s at world size {world_size}: {tokens / seconds:,.0f} "
                      "(150 batches)")  # fmt: skip

        # ------------------------------------------------------------- resume latency
        latency = {}
        for label, fraction in (("start", 0.0), ("90%", 0.9)):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                data = build_data(arguments(args.fasta), tokenizer, 1, 0, 0, data_cache_dir=cache)
                position = int(fraction * data.plan(0).rounds(1))
                next(iter(data.epoch(DataPosition(0, position))))
                best = min(best, time.perf_counter() - start)
            latency[label] = best
            print(f"resume latency at {label} of an epoch (batch {position:,}): {best:.2f} s")
        print(f"resume latency ratio 90%/start: {latency['90%'] / latency['start']:.2f}")
        if not args.skip_baseline:
            start = time.perf_counter()
            batcher = TokenBudgetBatcher(MAX_TOKENS, MAX_LENGTH, 2, 10_000, 0)
            skip = int(0.9 * len(plan))
            next(itertools.islice(batcher.batches(FastaCorpus([args.fasta])), skip, None))
            print(f"old streaming pipeline resume latency at 90%: {time.perf_counter() - start:.1f} s")

        # ------------------------------------------------------------- padding and shuffle
        real = SHARED_CORPUS if SHARED_CORPUS.is_file() else SLICE
        lengths = np.asarray(open_index(real).lengths, dtype=np.int64)
        for max_length in (512, 1024):
            shape = BatchShape(MAX_TOKENS, max_length, 2)
            kept, padded = plan_epoch(lengths, shape, 0, 0, 100_000).tokens(lengths, shape)
            print(f"padding fraction on {real.name} (max_length {max_length}, {MAX_TOKENS} tokens): "
                  f"{1 - kept / padded:.2%}")  # fmt: skip
        order = np.concatenate([plan.batch(b) for b in range(len(plan))])
        spread = np.abs(np.diff(order)).mean() / len(order)
        firsts = np.array([plan.batch(b)[0] for b in range(len(plan))])
        batch_spread = np.abs(np.diff(firsts)).mean() / len(order)
        print(f"shuffle: mean |file position step| of consecutive training records / N: {spread:.4f} "
              f"(uniform permutation: 0.3333; 10k-record pools: {10_000 / 3 / len(order):.4f})")  # fmt: skip
        print(f"shuffle: same statistic between the first records of consecutive batches: {batch_spread:.4f}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"per-rank rate ratio ws64/ws1: {rates[64] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
