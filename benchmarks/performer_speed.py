"""Performer forward speed on CPU: FAVOR+ against exact attention (sdpa, and eager up to a length), per head size,
with the crossover length from which FAVOR+ is the faster one.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/performer_speed.py            # 128 ... 8192
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/performer_speed.py --lengths 512 2048 --rounds 2

One Performer layer of 8 heads (hidden 8 x head_dim, 256 features), batches of ``--tokens`` tokens
(``tokens // length`` sequences of one length, no padding), float32, forward under ``inference_mode``,
``--threads`` intra-op threads (default 1: on a loaded shared machine, multi-threaded runs wait on each other's
barriers and their times vary tenfold). FAVOR+ and exact attention share every weight (``config.attention``).

The variants run back to back in every round and the minimum over rounds is kept, so that a ratio compares runs
taken under the same machine load; only ratios are reported (absolute speed on a shared machine says little), with
``uptime`` before and after the run to show what the load was. The crossover of a head size is the smallest
measured length from which FAVOR+ is faster than sdpa at that and every longer measured length.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import torch

import protconv

VARIANTS = ("favor", "sdpa", "eager")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096, 8192])
    parser.add_argument("--head-dims", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--tokens", type=int, default=8192, help="tokens per batch (at least one sequence)")
    parser.add_argument("--nb-features", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--eager-max-length", type=int, default=2048, help="eager materialises length x length per head: skip past"
    )
    return parser.parse_args()


def build(head_dim: int, nb_features: int) -> protconv.PerformerModel:
    config = protconv.PerformerConfig(
        hidden_size=8 * head_dim,
        num_attention_heads=8,
        intermediate_size=4 * 8 * head_dim,
        num_hidden_layers=1,
        nb_features=nb_features,
    )
    return protconv.PerformerModel(config).eval()


def seconds(model: protconv.PerformerModel, variant: str, batch: dict[str, torch.Tensor]) -> float:
    """One forward pass of ``variant`` (the same weights: only the attention switches)."""
    model.config.attention = "favor" if variant == "favor" else "softmax"
    model.config._attn_implementation = "eager" if variant == "eager" else "sdpa"
    start = time.perf_counter()
    with torch.inference_mode():
        model(**batch)
    return time.perf_counter() - start


def measure(model: protconv.PerformerModel, length: int, args: argparse.Namespace) -> dict[str, float]:
    """Best time per variant at ``length`` over ``args.rounds`` interleaved rounds (after one warm-up pass)."""
    count = max(1, args.tokens // length)
    ids = torch.randint(4, 29, (count, length), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    variants = [v for v in VARIANTS if v != "eager" or length <= args.eager_max_length]
    for variant in variants:
        seconds(model, variant, batch)
    best = {variant: float("inf") for variant in variants}
    for _ in range(args.rounds):
        for variant in variants:
            best[variant] = min(best[variant], seconds(model, variant, batch))
    return best


def crossover(ratios: dict[int, float]) -> int | None:
    """Smallest length from which FAVOR+ is faster (ratio > 1) at every longer measured length."""
    found = None
    for length in sorted(ratios, reverse=True):
        if ratios[length] <= 1:
            break
        found = length
    return found


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uptime unavailable"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"uptime before: {uptime()}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}"
        f", {args.nb_features} features, {args.tokens} tokens per batch, best of {args.rounds} rounds\n"
    )
    print("| head dim | length | sequences | FAVOR+/sdpa speed | eager/sdpa speed |")
    print("|---:|---:|---:|---:|---:|")
    started, found = time.perf_counter(), {}
    for head_dim in args.head_dims:
        model, ratios = build(head_dim, args.nb_features), {}
        for length in args.lengths:
            best = measure(model, length, args)
            ratios[length] = best["sdpa"] / best["favor"]
            eager = f"{best['sdpa'] / best['eager']:.2f}" if "eager" in best else "-"
            count = max(1, args.tokens // length)
            print(f"| {head_dim} | {length} | {count} | {ratios[length]:.2f} | {eager} |", flush=True)
        found[head_dim] = crossover(ratios)
    print("\nratio > 1: faster than sdpa (a speed ratio: tokens/s over sdpa's tokens/s)")
    for head_dim, length in found.items():
        where = f"from {length} tokens" if length is not None else f"not reached by {max(args.lengths)} tokens"
        print(f"head dim {head_dim}: FAVOR+ faster than sdpa {where}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; uptime after: {uptime()}")


if __name__ == "__main__":
    main()
