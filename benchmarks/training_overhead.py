"""Overhead of the pretraining loop over a bare forward+backward+AdamW loop on the same model and batches.

The loop adds streaming FASTA reading, cropping, batching, masking, the non-finite check, logging and the progress
bar; the bare loop runs the same optimizer update on batches prepared in memory beforehand. Both report real
(non-padding) tokens per second; the issue's target is < 5% overhead.

    .venv/bin/python benchmarks/training_overhead.py [--model carp-600k] [--steps 40] [--repeats 2]

Timings on a shared CPU are noisy: the two loops alternate ``--repeats`` times and the medians are compared, with one
torch thread by default (with more threads than free cores, OpenMP barriers wait on descheduled threads and a
step's time can jump several-fold).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState, GradientState

from protconv.modeling.losses import token_loss
from protconv.pretraining import DataArguments, ModelArguments, PretrainingArguments, build_pretraining_model, pretrain
from protconv.pretraining.pipeline import DataPosition, build_data
from protconv.tokenization import build_tokenizer

SLICE = Path(__file__).resolve().parents[1] / "examples" / "data" / "structural_proteins_4k.fasta.gz"
WARMUP_STEPS = 5


def loop_tokens_per_second(model: str, steps: int, max_tokens: int, output: Path) -> tuple[float, float]:
    """Real tokens/s of `pretrain` (validation and checkpoints pushed past the end), and its padding fraction."""
    data = DataArguments(
        train_files=[str(SLICE)], validation_fraction=0.0, max_length=1024, max_tokens_per_batch=max_tokens
    )
    train = PretrainingArguments(
        output_dir=str(output), overwrite_output_dir=True, max_steps=WARMUP_STEPS + steps, logging_steps=WARMUP_STEPS,
        eval_steps=10**9, eval_at_start=False, save_steps=10**9, disable_tqdm=True, plot=False, warmup_steps=10,
    )  # fmt: skip
    start = time.perf_counter()
    pretrain(ModelArguments(model=model), data, train)
    elapsed = time.perf_counter() - start
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in rows if r["split"] == "train" and r["step"] > WARMUP_STEPS]
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    seconds = sum(r["tokens"] / r["tokens_per_second"] for r in timed)
    padding = statistics.fmean(r["padding_fraction"] for r in timed)
    rate = sum(r["tokens"] for r in timed) / seconds
    print(f"  loop: {rate:,.0f} tokens/s (whole call incl. set-up and export: {elapsed:.0f}s)")
    return rate, padding


def bare_tokens_per_second(model_name: str, steps: int, max_tokens: int) -> float:
    """Real tokens/s of forward + masked-LM loss + backward + clip + AdamW on batches already in memory."""
    torch.manual_seed(0)
    model = build_pretraining_model(model_name).train()
    args = DataArguments(
        train_files=[str(SLICE)], validation_fraction=0.0, max_length=1024, max_tokens_per_batch=max_tokens
    )
    data = build_data(args, build_tokenizer(), 1, 0, 0)
    data.prefetch = 0
    batches = [b for _, b in itertools.islice(data.epoch(DataPosition()), WARMUP_STEPS + steps)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch: dict[str, torch.Tensor]) -> None:
        labels = batch["labels"]
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        token_loss(logits, labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:WARMUP_STEPS]:
        step(batch)
    start = time.perf_counter()
    for batch in batches[WARMUP_STEPS:]:
        step(batch)
    seconds = time.perf_counter() - start
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[WARMUP_STEPS:])
    print(f"  bare: {tokens / seconds:,.0f} tokens/s")
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="carp-600k")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--max_tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loops, bares, paddings = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats} ({args.model}, {args.steps} steps of {args.max_tokens} tokens)")
            bares.append(bare_tokens_per_second(args.model, args.steps, args.max_tokens))
            loop, padding = loop_tokens_per_second(args.model, args.steps, args.max_tokens, Path(tmp) / "run")
            loops.append(loop)
            paddings.append(padding)
    loop, bare = statistics.median(loops), statistics.median(bares)
    print(f"\nmedian tokens/s: loop {loop:,.0f}, bare forward+backward {bare:,.0f}")
    print(f"loop overhead: {100 * (1 - loop / bare):+.1f}% (negative: the loop was faster, i.e. noise)")
    print(f"padding fraction of the loop's batches: {100 * statistics.fmean(paddings):.2f}%")
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
