"""protconv Conv on CPU in bfloat16 vs the reference CARP ``sequence_models.ByteNetLM`` in fp32, same weights.

carp-38m shape (hidden 1024, intermediate 512, 16 layers), inference (eval, ``torch.inference_mode``), a batch of
real proteins from ``tests/data/some_proteins.fasta`` padded to the longest (attention mask / CARP input mask).
The weights are built once (random, seeded) in the reference and converted with ``protconv.conversion`` exactly as
``conv_vs_reference.py`` does; the bf16 models are copies of the fp32 protconv model:

- ``protconv bf16``: ``model.to(torch.bfloat16)`` (weights and activations in bf16), what ``protconv embed
  --dtype bfloat16`` loads;
- ``--ablation``: the same with the reduced-precision CPU fast paths of ``modeling_conv`` switched off, packing
  only (``unpacked``) or both packing and the channels-last convolution (``plain``: the code before them);
- ``protconv autocast``: the fp32 model under ``torch.autocast("cpu", dtype=torch.bfloat16)``;
- ``protconv bf16 compiled`` (``--compile``): ``torch.compile`` of the bf16 model, for comparison only (the
  package never requires it).

All variants are timed in alternation (the order rotates every repeat) in samples of about equal duration (a
sample of a fast variant is as many calls back to back as last one call of the slowest), so the load of a shared
machine hits them alike. Times are per call, medians over the repeats (and the minimum); a ratio "vs X" is the
median over repeats of X's sample time over the variant's in the same repeat, by wall-clock time (residues/s
too: real residues, not padding) or by CPU time (``time.process_time``, every thread of the process).

Top-1 agreement: the argmax of the logits of a bf16 variant equals the fp32 argmax, over the real residue
positions; max abs diff: the largest logit difference there (``--agreement-all``: also over all proteins of the
file, one padded batch). ``--profile`` adds torch.profiler tables (self CPU time by op) of one forward of fp32
and of bf16 (and of bf16 without the fast paths with ``--ablation``).

Default one thread: on a shared two-core machine, two threads make every op wait at OpenMP barriers for a
descheduled thread (see ``benchmarks/results/conv_cpu_dtype.md``).

    .venv/bin/python benchmarks/conv_cpu_dtype.py [--threads 1] [--batch 8] [--max-length 250] [--repeats 7]
        [--order file|length] [--profile] [--compile] [--ablation] [--agreement-all] [--no-reference]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch
from sequence_models.constants import PAD, PROTEIN_ALPHABET

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conv_vs_reference import PROTEINS, build_pair

import protconv
from protconv.conversion import CARP_ALPHABET, carp_token_map
from protconv.data import read_fasta
from protconv.modeling import modeling_conv


def time_once(fn: Callable[[], torch.Tensor]) -> tuple[float, float]:
    """Wall-clock and CPU (``process_time``: all threads of this process) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def agreement(logits: torch.Tensor, fp32: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """Top-1 agreement with the fp32 logits and the max |logit difference|, over real residue positions and the
    30 CARP tokens (the others carry the fixed -1e4 decoder bias and never win the argmax)."""
    columns = [carp_token_map()[i] for i in range(len(CARP_ALPHABET))]
    ours, exact = logits.float()[real][:, columns], fp32[real][:, columns]
    top1 = (ours.argmax(-1) == exact.argmax(-1)).float().mean().item()
    return top1, (ours - exact).abs().max().item()


def profile_table(fn: Callable[[], torch.Tensor], rows: int) -> str:
    """Markdown table of the ops of one forward by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = [
        f"one forward: {total / 1e3:.1f} ms self CPU in all",
        "",
        "| op | self CPU ms | % | calls |",
        "|---|---:|---:|---:|",
    ]
    for event in events[:rows]:
        share = 100 * event.self_cpu_time_total / total
        lines.append(f"| `{event.key}` | {event.self_cpu_time_total / 1e3:.1f} | {share:.1f} | {event.count} |")
    return "\n".join(lines)


def without(
    model: torch.nn.Module, batch: dict, packing: bool = True, channels_last: bool = True
) -> Callable[[], torch.Tensor]:
    """A forward of ``model`` with fast paths of ``modeling_conv`` switched off (ablation): ``packing=False``
    runs every block on the whole padded grid, ``channels_last=False`` too the plain ``Conv1d`` (both off: the
    bf16 model as it ran before the fast paths)."""

    def run() -> torch.Tensor:
        with contextlib.ExitStack() as stack:
            if not packing:
                stack.enter_context(mock.patch.object(modeling_conv.ConvModel, "_packed_positions", no_packing))
            if not channels_last:
                stack.enter_context(mock.patch.object(modeling_conv, "_reduced_precision_cpu", lambda tensor: False))
            return model(**batch).logits

    return run


def no_packing(model: torch.nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="carp-38m")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=250, help="use proteins up to this length")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--profile", action="store_true", help="print profiler tables of fp32 and bf16")
    parser.add_argument("--profile-rows", type=int, default=12)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the bf16 model")
    parser.add_argument("--no-reference", action="store_true", help="skip timing the (slow) reference")
    parser.add_argument(
        "--ablation", action="store_true", help="also time bf16 without packing, and without any CPU fast path"
    )
    parser.add_argument(
        "--agreement-all",
        action="store_true",
        help="also report top-1 agreement over every protein of the file (one padded batch)",
    )
    parser.add_argument(
        "--order",
        choices=["file", "length"],
        default="file",
        help="file: the first --batch proteins of the file up to --max-length (mixed lengths, as conv_vs_reference); "
        "length: the longest --batch of them (little padding, as protconv embed's length-sorted batches)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    sequences = [r.sequence for r in read_fasta(PROTEINS) if len(r.sequence) <= args.max_length]
    if args.order == "length":
        sequences.sort(key=len, reverse=True)
    sequences = sequences[: args.batch]
    tokenizer = protconv.build_tokenizer(add_cls=False, add_eos=False)
    batch = tokenizer(sequences, padding=True, return_tensors="pt")
    pad = PROTEIN_ALPHABET.index(PAD)
    tokens = torch.full(batch["input_ids"].shape, pad)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor([PROTEIN_ALPHABET.index(c) for c in sequence])
    input_mask = (tokens != pad).unsqueeze(-1)
    real = batch["attention_mask"].bool()
    residues = int(real.sum())

    reference, fp32 = build_pair(args.preset)
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)

    def run_autocast() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32(**batch).logits

    variants: dict[str, Callable[[], torch.Tensor]] = {}
    if not args.no_reference:
        variants["reference ByteNetLM fp32"] = lambda: reference(tokens, input_mask=input_mask)
    variants["protconv fp32"] = lambda: fp32(**batch).logits
    variants["protconv bf16"] = lambda: bf16(**batch).logits
    if args.ablation:
        variants["protconv bf16 unpacked"] = without(bf16, batch, packing=False)
        variants["protconv bf16 plain"] = without(bf16, batch, packing=False, channels_last=False)
    variants["protconv autocast bf16"] = run_autocast
    if args.compile:
        compiled = torch.compile(bf16)
        variants["protconv bf16 compiled"] = lambda: compiled(**batch).logits

    with torch.inference_mode():
        exact = fp32(**batch).logits
        columns = [carp_token_map()[i] for i in range(len(CARP_ALPHABET))]
        parity = (exact[..., columns][real] - reference(tokens, input_mask=input_mask)[real]).abs().max().item()
        quality = {name: agreement(fn(), exact, real) for name, fn in variants.items() if "bf16" in name}
        first = {name: time_once(fn)[0] for name, fn in variants.items()}
        # A sample of a fast variant is several calls back to back, as long as one call of the slowest: samples
        # taken one after the other then last alike and meet the same load of a shared machine.
        calls = {name: max(1, round(max(first.values()) / seconds)) for name, seconds in first.items()}
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for repeat in range(args.repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                wall, cpu = time_once(lambda name=name: [variants[name]() for _ in range(calls[name])])
                walls[name].append(wall / calls[name])
                cpus[name].append(cpu / calls[name])

    lengths = [len(s) for s in sequences]
    print(
        f"preset {args.preset}, batch {len(sequences)} real proteins, lengths {min(lengths)}-{max(lengths)} "
        f"(padded to {tokens.shape[1]}, {residues} residues), {torch.get_num_threads()} threads, "
        f"{args.repeats} repeats, torch {torch.__version__}"
    )
    print(f"protconv fp32 vs reference: max |logit difference| (CARP tokens, real residues) {parity:.2e}")
    print()
    print(
        "| model | calls per sample | median ms | min ms | CPU median ms | residues/s | vs reference | "
        "vs reference (CPU time) | vs protconv fp32 | top-1 vs fp32 | max abs diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    reference_name = "reference ByteNetLM fp32"

    def ratio(times: dict[str, list[float]], over: str, name: str) -> str:
        """Median over repeats of the ratio of the two samples taken in that repeat."""
        if over not in times:
            return "-"
        return f"{statistics.median(a / b for a, b in zip(times[over], times[name], strict=True)):.2f}x"

    for name in variants:
        median = statistics.median(walls[name])
        top1, diff = quality.get(name, (None, None))
        print(
            f"| {name} | {calls[name]} | {median * 1e3:.1f} | {min(walls[name]) * 1e3:.1f} | "
            f"{statistics.median(cpus[name]) * 1e3:.1f} | {residues / median:.0f} | "
            f"{ratio(walls, reference_name, name)} | {ratio(cpus, reference_name, name)} | "
            f"{ratio(walls, 'protconv fp32', name)} | "
            f"{'-' if top1 is None else f'{top1:.4f}'} | {'-' if diff is None else f'{diff:.3f}'} |"
        )
    if args.agreement_all:
        every = [r.sequence for r in read_fasta(PROTEINS)]
        whole = tokenizer(every, padding=True, return_tensors="pt")
        with torch.inference_mode():
            exact = fp32(**whole).logits
            for name, model in (("protconv bf16", bf16), ("protconv autocast bf16", None)):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=model is None):
                    logits = (model or fp32)(**whole).logits
                top1, diff = agreement(logits, exact, whole["attention_mask"].bool())
                print(
                    f"{name} vs fp32 over all {len(every)} proteins ({int(whole['attention_mask'].sum())} "
                    f"residues): top-1 {top1:.4f}, max |logit difference| {diff:.3f}"
                )
    if args.profile:
        with torch.inference_mode():
            for name in ("protconv fp32", "protconv bf16 plain", "protconv bf16", "protconv autocast bf16"):
                if name not in variants:
                    continue
                print(f"\n#### {name}\n")
                print(profile_table(variants[name], args.profile_rows))


if __name__ == "__main__":
    main()
