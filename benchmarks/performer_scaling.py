"""FAVOR+ against exact softmax attention on the same Performer weights, and against performer-pytorch, on CPU.

    .venv/bin/python benchmarks/performer_scaling.py                      # L = 512 ... 32768, performer-small
    .venv/bin/python benchmarks/performer_scaling.py --lengths 512 2048 --repeats 2 --json out.json

For every length the three models run back to back, each once per round, so that the ratios compare
measurements taken under the same machine load; the reported time is the minimum over rounds (the least
disturbed run: the machine this was written on is shared, 2 cores). Peak memory is the growth of the process's
resident set during one forward pass (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before the
pass), so it includes everything the forward pass allocates, whichever allocator it uses.

Reported: the crossover length from which FAVOR+ is faster than exact attention, the speed ratio at 16,384
tokens, the ratio against performer-pytorch, and how memory grows with length.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch

import protconv

DEFAULT_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
RATIO_LENGTH = 16384


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="performer-small", help="protconv Performer preset")
    parser.add_argument("--nb-features", type=int, default=256)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(DEFAULT_LENGTHS))
    parser.add_argument(
        "--repeats", type=int, default=2, help="timing rounds at 16k tokens; 2x up to 8k, 4x up to 2k, 1 at 32k"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads (default 1: on a loaded shared machine, multi-threaded runs wait on each other's "
        "barriers and their times vary tenfold)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip performer-pytorch")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    return parser.parse_args()


# --- memory ---------------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))


def _release_free_memory() -> None:
    """Return freed heap pages to the OS, so that the baseline resident set is not inflated by old runs."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the baseline is just less tight
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measure(forward: Callable[[], object]) -> tuple[float, float]:
    """(seconds, peak extra resident MiB) of one call."""
    _release_free_memory()
    baseline = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    start = time.perf_counter()
    forward()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return seconds, (peak - baseline) / 1024


# --- models ---------------------------------------------------------------------------------------------------


def build_models(args: argparse.Namespace) -> tuple[protconv.PerformerForMaskedLM, torch.nn.Module | None]:
    config = protconv.PerformerConfig.from_preset(args.preset, nb_features=args.nb_features)
    ours = protconv.PerformerForMaskedLM(config).eval()
    peer = None
    if not args.no_peer:
        try:
            from performer_pytorch import PerformerLM
        except ImportError:
            print("performer-pytorch is not installed (pip install 'protconv[bench]'): peer skipped")
        else:
            # The same shape: width, depth, heads, head size, MLP ratio, features, biases, rotary positions.
            peer = PerformerLM(
                num_tokens=config.vocab_size,
                max_seq_len=max(args.lengths),
                dim=config.hidden_size,
                depth=config.num_hidden_layers,
                heads=config.num_attention_heads,
                dim_head=config.hidden_size // config.num_attention_heads,
                ff_mult=config.intermediate_size // config.hidden_size,
                nb_features=config.nb_features,
                rotary_position_emb=True,
                qkv_bias=True,
                attn_out_bias=True,
            ).eval()
    return ours, peer


def forwards(
    ours: protconv.PerformerForMaskedLM, peer: torch.nn.Module | None, input_ids: torch.Tensor
) -> dict[str, Callable[[], object]]:
    """One zero-argument forward per contender; ``favor`` and ``softmax`` share every weight."""

    def run_ours(attention: str) -> Callable[[], object]:
        def forward() -> object:
            ours.config.attention = attention
            return ours(input_ids).logits

        return forward

    contenders = {"favor": run_ours("favor"), "softmax": run_ours("softmax")}
    if peer is not None:
        contenders["performer-pytorch"] = lambda: peer(input_ids)
    return contenders


def rounds_for(length: int, repeats: int) -> int:
    """Timing rounds: many for short inputs (cheap, and the most disturbed by other load on a shared machine),
    fewer for long ones (exact attention at 32k takes tens of seconds on two cores)."""
    if length <= 2048:
        return 4 * repeats
    if length <= 8192:
        return 2 * repeats
    return repeats if length <= 16384 else 1


def time_once(forward: Callable[[], object]) -> float:
    start = time.perf_counter()
    forward()
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> list[dict]:
    """Timing rounds first (plain calls), then one memory pass per contender, which also counts as a timing
    sample. The memory pass returns freed pages to the OS first, so its page faults can only make it slower."""
    ours, peer = build_models(args)
    rows = []
    with torch.no_grad():
        warm = torch.randint(5, 25, (1, 1024))
        for _ in range(3):
            for forward in forwards(ours, peer, warm).values():
                forward()
        for length in args.lengths:
            input_ids = torch.randint(5, 25, (1, length))
            contenders = forwards(ours, peer, input_ids)
            samples: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(rounds_for(length, args.repeats)):
                for name, forward in contenders.items():
                    samples[name].append(time_once(forward))
            memory = {}
            for name, forward in contenders.items():
                elapsed, memory[name] = measure(forward)
                samples[name].append(elapsed)
            seconds = {name: min(values) for name, values in samples.items()}
            rows.append({"length": length, "seconds": seconds, "peak_mib": memory, "samples": samples})
            print(
                f"  L={length:>6}: "
                + ", ".join(f"{name} {seconds[name]:.3f}s {memory[name]:.0f}MiB" for name in contenders),
                flush=True,
            )
    ours.config.attention = "favor"
    return rows


# --- report ---------------------------------------------------------------------------------------------------


def crossover(rows: list[dict]) -> int | None:
    """Smallest measured length from which FAVOR+ is faster than exact attention at every longer length."""
    answer = None
    for row in reversed(rows):
        if row["seconds"]["favor"] < row["seconds"]["softmax"]:
            answer = row["length"]
        else:
            break
    return answer


def report(rows: list[dict], args: argparse.Namespace, n_params: dict[str, int]) -> str:
    has_peer = "performer-pytorch" in rows[0]["seconds"]
    header = "| L | FAVOR+ s | softmax s | softmax/FAVOR+ | FAVOR+ MiB | softmax MiB |"
    rule = "|---:|---:|---:|---:|---:|---:|"
    if has_peer:
        header += " performer-pytorch s | p-p/FAVOR+ | p-p MiB |"
        rule += "---:|---:|---:|"
    lines = [header, rule]
    for row in rows:
        s, m = row["seconds"], row["peak_mib"]
        line = (
            f"| {row['length']} | {s['favor']:.3f} | {s['softmax']:.3f} | {s['softmax'] / s['favor']:.2f}x"
            f" | {m['favor']:.0f} | {m['softmax']:.0f} |"
        )
        if has_peer:
            peer = s["performer-pytorch"]
            line += f" {peer:.3f} | {peer / s['favor']:.2f}x | {m['performer-pytorch']:.0f} |"
        lines.append(line)
    by_length = {row["length"]: row for row in rows}
    summary = [
        "",
        f"crossover (FAVOR+ faster than exact from here on): {crossover(rows) or 'not reached'} tokens",
    ]
    if RATIO_LENGTH in by_length:
        s = by_length[RATIO_LENGTH]["seconds"]
        summary.append(
            f"speed ratio at {RATIO_LENGTH} tokens: FAVOR+ {s['softmax'] / s['favor']:.2f}x faster than exact"
        )
        if has_peer:
            summary.append(
                f"vs performer-pytorch at {RATIO_LENGTH} tokens: FAVOR+ {s['performer-pytorch'] / s['favor']:.2f}x"
                " faster (>1 = protconv faster)"
            )
    if has_peer:
        ratios = [row["seconds"]["performer-pytorch"] / row["seconds"]["favor"] for row in rows]
        summary.append(f"vs performer-pytorch over all lengths: {min(ratios):.2f}x to {max(ratios):.2f}x")
    first, last = rows[0], rows[-1]
    growth = last["length"] / first["length"]
    summary.append(
        f"FAVOR+ peak memory grows {last['peak_mib']['favor'] / max(first['peak_mib']['favor'], 1e-9):.1f}x"
        f" for {growth:.0f}x the length ({first['length']} -> {last['length']})"
    )
    context = (
        f"preset {args.preset} ({n_params['protconv']:,} parameters"
        + (f"; performer-pytorch {n_params['performer-pytorch']:,}" if has_peer else "")
        + f"), nb_features {args.nb_features}, head dim 64, batch 1, forward only (no_grad), float32, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    return "\n".join([context, "", *lines, *summary])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    rows = run(args)
    ours, peer = build_models(args)
    n_params = {"protconv": sum(p.numel() for p in ours.parameters())}
    if peer is not None:
        n_params["performer-pytorch"] = sum(p.numel() for p in peer.parameters())
    print()
    print(report(rows, args, n_params))
    print(f"\ntotal benchmark time {time.perf_counter() - start:.0f}s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "parameters": n_params}, indent=2))


if __name__ == "__main__":
    main()
