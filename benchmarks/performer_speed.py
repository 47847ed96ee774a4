"""Performer embed throughput on CPU: FAVOR+ (this version vs the previous one) against exact sdpa and eager.

    PYTHONPATH=src .venv/bin/python benchmarks/performer_speed.py --lengths 128 256 512 1024 --head-dims 16 32 64

One Performer layer of 8 heads (hidden 8 x head_dim, 256 features), batches of ``--tokens`` tokens
(``tokens // length`` sequences), float32, ``--threads`` intra-op threads. The four variants run back to back in
every round and the minimum over rounds is reported, so that ratios compare runs under the same machine load.
Reported: tokens/s per variant, new/old FAVOR+ and the crossover length (the first length at which FAVOR+ is
faster than sdpa) per head size.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import protconv
from protconv.modeling import modeling_performer


def old_favor_attention(q, k, v, projection, key_mask=None, causal=False, kernel="softmax", eps=None):
    """The previous FAVOR+ (non-causal softmax kernel): floor added to both feature maps, state K'ᵀ[V, 1]."""
    dim, m = q.shape[-1], projection.shape[0]
    hsn = dim**-0.5 / 2
    weights = torch.cat([projection * dim**-0.25, -q.new_ones(m, 1)], dim=1)

    def features(x: torch.Tensor, is_query: bool) -> torch.Tensor:
        logits = torch.cat([x, (x * x).sum(-1, keepdim=True) * hsn], -1) @ weights.t()
        c = logits.amax(-1, keepdim=True)
        if not is_query:
            if key_mask is not None:
                c = c.masked_fill(~key_mask[:, None, :, None], float("-inf"))
            c = c.amax(-2, keepdim=True)
        return logits.sub_(c + 0.5 * math.log(m)).exp_().add_(1e-6 * m**-0.5)

    v1 = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], -1)
    if key_mask is not None:
        v1 = v1 * key_mask[:, None, :, None]
    out = features(q, True) @ (features(k, False).transpose(-1, -2) @ v1)
    return out[..., :-1] / out[..., -1:]


def build(head_dim: int) -> torch.nn.Module:
    config = protconv.PerformerConfig(
        hidden_size=8 * head_dim, num_attention_heads=8, intermediate_size=4 * 8 * head_dim, num_hidden_layers=1
    )
    return protconv.PerformerModel(config).eval()


def run(model: torch.nn.Module, variant: str, batch: dict[str, torch.Tensor]) -> float:
    new = modeling_performer.favor_attention
    model.config.attention = "favor" if variant.startswith("favor") else "softmax"
    model.config._attn_implementation = "eager" if variant == "eager" else "sdpa"
    if variant == "favor-old":
        modeling_performer.favor_attention = old_favor_attention
    try:
        start = time.perf_counter()
        with torch.inference_mode():
            model(**batch)
        return time.perf_counter() - start
    finally:
        modeling_performer.favor_attention = new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096, 8192])
    parser.add_argument("--head-dims", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = ("favor-old", "favor", "sdpa", "eager")
    print("| head dim | length | " + " | ".join(f"{v} tok/s" for v in variants) + " | new/old FAVOR+ | FAVOR+/sdpa |")
    print("|---" * (len(variants) + 4) + "|")
    for head_dim in args.head_dims:
        model, crossover = build(head_dim), None
        for length in args.lengths:
            n = max(1, args.tokens // length)
            ids = torch.randint(4, 29, (n, length), generator=torch.Generator().manual_seed(0))
            batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            best = {v: min(run(model, v, batch) for _ in range(args.rounds)) for v in variants}
            speed = {v: n * length / best[v] for v in variants}
            if crossover is None and speed["favor"] > speed["sdpa"]:
                crossover = length
            cells = " | ".join(f"{speed[v]:,.0f}" for v in variants)
            ratios = f"{speed['favor'] / speed['favor-old']:.2f} | {speed['favor'] / speed['sdpa']:.2f}"
            print(f"| {head_dim} | {length} | {cells} | {ratios} |", flush=True)
        print(f"<!-- head dim {head_dim}: FAVOR+ faster than sdpa from length {crossover} -->", flush=True)


if __name__ == "__main__":
    main()
