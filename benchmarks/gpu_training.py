"""GPU training and inference of both families in one prepared run (issue 26): correctness in reduced precision,
a real pretraining run and its exact resume, training-step throughput and MFU, embed against the bare forward.

Runs on whatever device it finds (CUDA if present, else the CPU) and prints each result as it is reached (flushed),
so a run cut off at its time limit still reports what it measured. Sections, in order, each under ``--budget_s``
seconds (a case that would start after its section's budget is skipped and says so):

1. correctness, both families, forward + backward: fp32 against bf16 autocast, fp16 autocast and bf16 weights.
   Checked: finite logits and gradients; padding invariance (each sequence alone equals its row of the padded
   batch, max |diff| / max |logit| under the dtype's tolerance ``PADDING_TOLERANCE``); logits within 4x that of
   fp32's; top-1 agreement with fp32 >= 0.98 at the real positions where fp32's top-2 margin exceeds twice the
   run's largest logit error (``top1_agreement``; the raw figure over every position is printed beside it: a random
   model's near-flat logits make it count rounding-flipped near-ties); FAVOR+ features computed in float32 with
   autocast off inside autocast. fp16 autocast runs on the CPU
   too (torch >= 2.4 supports it); where ``torch.autocast`` refuses a dtype, the row says why and is skipped.
2. ``protconv pretrain`` through ``protconv.cli.main`` (the command's own entry, in this process) with
   ``--mixed_precision bf16``: 100 steps of ``examples/configs/demo.yaml`` (the shipped 4,000-protein corpus;
   Conv carp-600k and performer-small), then the same run stopped at step 50 and resumed: the final weights must be
   bit-identical. A second uninterrupted run tells nondeterministic kernels apart from a resume defect.
3. training-step throughput (forward, masked-LM loss, backward, grad clip, AdamW; bf16 autocast over fp32 weights,
   as ``--mixed_precision bf16``) in tokens/s and MFU against a bf16 matmul rate measured in this run:
   carp-38m and carp-640m at 1,024 and 8,192 tokens per sequence, performer-base at 8,192 and 32,768, the
   Performer's ``attention="softmax"`` and transformers' ESM-2 (``EsmForMaskedLM``, random init from ``EsmConfig``,
   ``attn_implementation="sdpa"``, rotary) of the same width and depth at the same tokens per batch; then the main
   cases again under ``torch.compile``.
4. ``protconv.inference.embed`` (bfloat16) residues/s against a bare bf16 forward of the same model on the same
   batches (encoded and on the device beforehand). embed's fixed cost (loading, file creation) is measured on a
   one-record file and subtracted; the end-to-end rate is printed too.

FLOPs are counted analytically, 2 per multiply-add, forward only, and a training step is 3x the forward:

- Conv, per token: ``2 [E H + n (H I + K I^2 + I H) + H V]`` (E embedding size, H hidden, I intermediate,
  K kernel taps, all K counted as a GPU runs them, n layers, V vocabulary);
- Performer FAVOR+, per token: ``2 [n (4 H^2 + 2 H F) + H V] + n h 8 m (d + 1)`` (F MLP width, h heads of d,
  m random features: the q and k feature maps ``2 * 2 m (d + 1)`` and ``K'^T [V, 1]`` then ``Q' (.)``,
  ``2 * 2 m (d + 1)``); exact softmax replaces the last term by ``n 4 L H`` (``Q K^T`` and ``A V``, L tokens);
- ESM-2: ``2 [n (4 H^2 + 2 H F) + H^2 + H V] + n 4 L H`` (its LM head has a dense layer).

On the GPU machine (see /work/.library/device/README.md and KINDS.md): its image has torch 2.11, accelerate 1.15,
h5py, tokenizers 0.23.2, safetensors 0.8, pyyaml, tqdm and matplotlib, but transformers 5.17 and huggingface_hub
1.33, older than protconv's ``transformers>=5.23`` (5.25 wants ``huggingface-hub>=2.4``, which wants ``httpx2``).
Carry the wheels that the development venv has (not checked on a GPU machine yet: if an import still fails there,
add the package it names), in the repo root with ``.whl`` in ``.git/info/exclude``::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
        transformers==5.25.0 huggingface_hub==2.4.0 httpx2==2.17.0 hf-xet==1.8.0 kernels==0.19.1

and run, with ``carry: [".whl"]``, sized to end inside 8 minutes on an H100 (four sections of at most 100 s, a case
already started may overrun its section)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \
    PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:src python3 benchmarks/gpu_training.py --budget_s 100 \
        --out $OUT/gpu_training.md 2>&1 | tee $OUT/log

``--tiny`` shrinks every model and length so that all four sections run in seconds on a CPU (the test suite runs
it); its figures only show that the code paths run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM, EsmConfig

import protconv
from protconv.data import read_fasta
from protconv.modeling import favor
from protconv.modeling.losses import token_loss

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "examples" / "data" / "structural_proteins_4k.fasta.gz"
DEMO_CONFIG = ROOT / "examples" / "configs" / "demo.yaml"
PROTEINS = ROOT / "tests" / "data" / "some_proteins.fasta"
#: Padding invariance: max |padded - alone| / max |logit| allowed per mode.
PADDING_TOLERANCE = {"fp32": 1e-4, "bf16-autocast": 5e-2, "fp16-autocast": 1e-2, "bf16-weights": 5e-2}
MIN_TOP1 = 0.98
TINY_CONV = {"hidden_size": 32, "intermediate_size": 16, "num_hidden_layers": 4, "max_dilation": 4}
TINY_PERFORMER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def say(text: str) -> None:
    print(text, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Report:
    """What the run found: rows per section and the checks that failed."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, section: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(section, []).append(row)
        say(f"[{section}] " + ", ".join(f"{k}={v}" for k, v in row.items()))

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
            say(f"FAILED: {what}")
        return ok


class Budget:
    """A section's deadline: cases check it before starting."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


# ---------------------------------------------------------------- section 1: correctness


def autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    dtype = {"bf16-autocast": torch.bfloat16, "fp16-autocast": torch.float16}.get(mode)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def autocast_refusal(mode: str, device: torch.device) -> str | None:
    """Why this autocast mode cannot run here, or None."""
    try:
        with autocast(mode, device):
            torch.nn.Linear(4, 4).to(device)(torch.ones(1, 4, device=device))
    except (RuntimeError, ValueError) as error:
        return f"torch.autocast refuses it on {device.type}: {error}"
    return None


@contextlib.contextmanager
def feature_dtypes() -> Iterator[list[tuple[torch.dtype, bool]]]:
    """Record (dtype, autocast on) of every FAVOR+ feature map computed inside the block."""
    seen: list[tuple[torch.dtype, bool]] = []
    originals = favor.softmax_kernel_features, favor.relu_kernel_features

    def recording(function: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def wrapped(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            out = function(x, *args, **kwargs)
            seen.append((out.dtype, torch.is_autocast_enabled(x.device.type)))
            return out

        return wrapped

    favor.softmax_kernel_features, favor.relu_kernel_features = (recording(f) for f in originals)
    try:
        yield seen
    finally:
        favor.softmax_kernel_features, favor.relu_kernel_features = originals


def forward_backward(model: torch.nn.Module, batch: dict[str, torch.Tensor], mode: str, device: torch.device):
    """Logits (float32) and the flat gradient of the masked-LM loss over every real position."""
    model.zero_grad(set_to_none=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with autocast(mode, device):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = token_loss(logits.float(), labels)
    loss.backward()
    grads = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    return logits.detach().float(), grads


def correctness_models(tiny: bool) -> dict[str, torch.nn.Module]:
    if tiny:
        conv = protconv.ConvConfig(**TINY_CONV)
        performer = protconv.PerformerConfig(**TINY_PERFORMER, nb_features=32)
    else:
        conv, performer = (
            protconv.ConvConfig.from_preset("carp-38m"),
            protconv.PerformerConfig.from_preset("performer-base"),
        )
    torch.manual_seed(0)
    return {"conv": protconv.ConvForMaskedLM(conv), "performer": protconv.PerformerForMaskedLM(performer)}


def check_mode(
    report: Report, name: str, model: torch.nn.Module, mode: str, sequences: list[str], reference: tuple, device
) -> None:
    """One (family, mode) row of section 1 against the fp32 ``reference`` (logits, grads, padded batch)."""
    ref_logits, ref_grads, batch = reference
    if mode == "bf16-weights":
        model = copy.deepcopy(model).to(torch.bfloat16)
    with feature_dtypes() as seen:
        logits, grads = forward_backward(model, batch, mode, device)
    real = batch["attention_mask"].bool()
    worst = 0.0
    for row, sequence in enumerate(sequences):
        alone = tokenize([sequence], device)
        with torch.no_grad(), autocast(mode, device):
            single = model(**alone).logits.float()[0]
        length = int(alone["attention_mask"].sum())
        worst = max(worst, float((single - logits[row, :length]).abs().max() / single.abs().max()))
    top1, raw = top1_agreement(logits, ref_logits, real)
    error = float((logits - ref_logits).abs()[real].max() / ref_logits.abs()[real].max())
    cosine = float(torch.nn.functional.cosine_similarity(grads, ref_grads, dim=0))
    finite = bool(torch.isfinite(logits).all() and torch.isfinite(grads).all())
    fp32_features = all(dtype == torch.float32 and not on for dtype, on in seen)
    report.add(
        "correctness",
        {"family": name, "mode": mode, "finite": finite, "padding_rel_diff": f"{worst:.2e}",
         "top1_vs_fp32": f"{top1:.4f}", "top1_all_positions": f"{raw:.4f}",
         "logit_rel_err_vs_fp32": f"{error:.2e}", "grad_cosine_vs_fp32": f"{cosine:.4f}",
         "favor_features": "n/a" if not seen else ("fp32" if fp32_features else "NOT fp32")},
    )  # fmt: skip
    report.check(finite, f"{name} {mode}: non-finite logits or gradients")
    report.check(worst <= PADDING_TOLERANCE[mode], f"{name} {mode}: padding changes outputs by {worst:.2e}")
    report.check(error <= 4 * PADDING_TOLERANCE[mode], f"{name} {mode}: logits off fp32 by {error:.2e} (relative)")
    report.check(top1 >= MIN_TOP1, f"{name} {mode}: top-1 agreement with fp32 {top1:.4f} < {MIN_TOP1}")
    report.check(not seen or fp32_features, f"{name} {mode}: FAVOR+ features not computed in fp32 without autocast")


def top1_agreement(logits: torch.Tensor, reference: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """Top-1 agreement with fp32 at decisive positions, and at every real position.

    A position is decisive when fp32's margin between its first and second choice exceeds twice the largest
    logit error of the reduced-precision run: only there does a flipped choice mean an error beyond rounding.
    A random-init model's logits are nearly flat, so the raw figure mostly counts rounding-flipped near-ties.
    """
    agree = logits.argmax(-1) == reference.argmax(-1)
    top2 = reference.topk(2, dim=-1).values
    error = float((logits - reference).abs()[real].max())
    decisive = real & (top2[..., 0] - top2[..., 1] > 2 * error)
    raw = float(agree[real].float().mean())
    if not bool(decisive.any()):
        return 0.0, raw  # nothing decisive: the run's error swamps every margin, which is a failure
    return float(agree[decisive].float().mean()), raw


_TOKENIZER = protconv.build_tokenizer()


def tokenize(sequences: list[str], device: torch.device) -> dict[str, torch.Tensor]:
    encoded = _TOKENIZER(sequences, padding=True, return_tensors="pt")
    return {"input_ids": encoded["input_ids"].to(device), "attention_mask": encoded["attention_mask"].to(device)}


def section_correctness(report: Report, device: torch.device, tiny: bool, budget: Budget) -> None:
    count, crop = (4, 96) if tiny else (8, 512)
    sequences = [record.sequence[:crop] for record in read_fasta(PROTEINS)][:count]
    sequences = [s[: max(16, crop - 17 * i)] for i, s in enumerate(sequences)]  # mixed lengths: real padding
    batch = tokenize(sequences, device)
    for name, model in correctness_models(tiny).items():
        model = model.to(device).eval()
        ref_logits, ref_grads = forward_backward(model, batch, "fp32", device)
        for mode in PADDING_TOLERANCE:
            if budget.left() <= 0:
                report.add("correctness", {"family": name, "mode": mode, "skipped": "section budget spent"})
                continue
            refusal = autocast_refusal(mode, device)
            if refusal:
                report.add("correctness", {"family": name, "mode": mode, "skipped": refusal})
                continue
            check_mode(report, name, model, mode, sequences, (ref_logits, ref_grads, batch), device)


# ---------------------------------------------------------------- section 2: pretraining and exact resume


def run_pretrain(arguments: list[str]) -> None:
    from protconv.cli import main

    try:
        code = main(["pretrain", *arguments])
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    if code != 0:
        raise RuntimeError(f"protconv pretrain {' '.join(arguments)} exited with {code}")


def pretrain_arguments(model: list[str], steps: int, tiny: bool, output: Path) -> list[str]:
    base = ["--config", str(DEMO_CONFIG), *model, "--max_steps", str(steps), "--mixed_precision", "bf16"]
    base += ["--save_steps", str(steps // 2), "--eval_steps", str(steps), "--no_eval_at_start", "--no_plot"]
    base += ["--disable_tqdm", "--log_level", "warning", "--output_dir", str(output), "--overwrite_output_dir"]
    if tiny:
        base += ["--max_length", "128", "--max_tokens_per_batch", "1024", "--warmup_steps", "2"]
    return base


def section_pretraining(report: Report, device: torch.device, tiny: bool, budget: Budget) -> None:
    models = {"conv": ["--model", "protconv_conv", "--config_overrides", _overrides(TINY_CONV)]} if tiny else {
        "conv": ["--model", "carp-600k"], "performer": ["--model", "performer-small"]}  # fmt: skip
    steps = 6 if tiny else 100
    for name, model in models.items():
        if budget.left() <= 0:
            report.add("pretraining", {"family": name, "skipped": "section budget spent"})
            continue
        with tempfile.TemporaryDirectory() as tmp:
            runs = {label: Path(tmp) / label for label in ("whole", "again", "resumed")}
            start = time.perf_counter()
            run_pretrain(pretrain_arguments(model, steps, tiny, runs["whole"]))
            seconds = time.perf_counter() - start
            run_pretrain(
                [*pretrain_arguments(model, steps, tiny, runs["resumed"]), "--stop_after_steps", str(steps // 2)]
            )
            resumed = pretrain_arguments(model, steps, tiny, runs["resumed"])
            run_pretrain([a for a in resumed if a != "--overwrite_output_dir"] + ["--resume"])
            run_pretrain(pretrain_arguments(model, steps, tiny, runs["again"]))
            weights = {label: load_file(path / "model" / "model.safetensors") for label, path in runs.items()}
        identical = _same(weights["whole"], weights["resumed"])
        report.add(
            "pretraining",
            {
                "family": name,
                "steps": steps,
                "mixed_precision": "bf16",
                "seconds_uninterrupted": f"{seconds:.1f}",
                "resume_bit_identical": identical,
                "rerun_bit_identical": _same(weights["whole"], weights["again"]),
            },
        )
        report.check(identical, f"{name}: resumed pretraining differs from the uninterrupted run")


def _overrides(values: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- section 3: training throughput and MFU


@dataclass(frozen=True)
class Case:
    label: str
    family: str  # conv | performer | esm
    shape: dict[str, int]
    length: int
    tokens_per_batch: int
    attention: str = "favor"
    compiled: bool = False


def forward_flops_per_token(case: Case) -> float:
    """The module docstring's formulas."""
    s, n, vocab, length = case.shape, case.shape["num_hidden_layers"], 33, case.length
    hidden, inner = s["hidden_size"], s["intermediate_size"]
    if case.family == "conv":
        return 2.0 * (8 * hidden + n * (2 * hidden * inner + 5 * inner * inner) + hidden * vocab)
    dense = 2.0 * n * (4 * hidden * hidden + 2 * hidden * inner)
    if case.family == "esm":
        return dense + 2.0 * (hidden * hidden + hidden * vocab) + n * 4.0 * length * hidden
    heads = s["num_attention_heads"]
    head_dim, features = hidden // heads, s.get("nb_features", 256)
    attention = n * heads * 8.0 * features * (head_dim + 1) if case.attention == "favor" else n * 4.0 * length * hidden
    return dense + 2.0 * hidden * vocab + attention


def build_case_model(case: Case) -> torch.nn.Module:
    torch.manual_seed(0)
    if case.family == "conv":
        return protconv.ConvForMaskedLM(protconv.ConvConfig(**case.shape))
    if case.family == "performer":
        return protconv.PerformerForMaskedLM(protconv.PerformerConfig(**case.shape, attention=case.attention))
    s = case.shape
    config = EsmConfig(
        vocab_size=33, hidden_size=s["hidden_size"], num_hidden_layers=s["num_hidden_layers"],
        num_attention_heads=s["num_attention_heads"], intermediate_size=s["intermediate_size"],
        position_embedding_type="rotary", max_position_embeddings=case.length + 2, pad_token_id=0,
        mask_token_id=1, token_dropout=False, attn_implementation="sdpa",
    )  # fmt: skip
    return AutoModelForMaskedLM.from_config(config, attn_implementation="sdpa")


def random_batch(case: Case, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    rows = max(1, case.tokens_per_batch // case.length)
    ids = torch.randint(5, 25, (rows, case.length), generator=generator)
    labels = ids.masked_fill(torch.rand(ids.shape, generator=generator) > 0.15, -100)
    batch = {"input_ids": ids, "labels": labels}
    if case.family != "esm":  # ESM gets no mask, so SDPA may take its flash kernel (nothing is padded)
        batch["attention_mask"] = torch.ones_like(ids)
    return {key: value.to(device) for key, value in batch.items()}


def time_training_step(case: Case, device: torch.device, warmup: int, steps: int, backend: str) -> float:
    """Seconds per training step (forward, loss, backward, clip, AdamW) under bf16 autocast."""
    with torch.device(device):  # initialised where it runs: a 1B-parameter CPU init would take most of a minute
        model = build_case_model(case).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = torch.compile(model, backend=backend) if case.compiled else model
    batch = random_batch(case, device)

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = forward(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / steps


def matmul_rate(device: torch.device, size: int) -> float:
    """bf16 matmul FLOP/s of ``size``-cubed products on ``device`` (the MFU denominator)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    repeats, start = 10, time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2.0 * size**3 * repeats / (time.perf_counter() - start)


def throughput_cases(tiny: bool) -> list[Case]:
    if tiny:
        conv38, conv640 = TINY_CONV, {**TINY_CONV, "intermediate_size": 32}
        base, lengths, long_lengths, tokens = {**TINY_PERFORMER, "nb_features": 32}, (64, 256), (256, 512), 512
    else:
        conv38, conv640 = (protconv.ConvConfig.presets[p] for p in ("carp-38m", "carp-640m"))
        base, lengths, long_lengths, tokens = protconv.PerformerConfig.presets["performer-base"], (1024, 8192), (
            8192, 32768), 16384  # fmt: skip
    esm38 = {
        **conv38,
        "intermediate_size": 4 * conv38["hidden_size"],
        "num_attention_heads": max(2, conv38["hidden_size"] // 64),
    }
    esm640 = {
        **conv640,
        "intermediate_size": 4 * conv640["hidden_size"],
        "num_attention_heads": max(2, conv640["hidden_size"] // 64),
    }
    esm_base = {k: v for k, v in base.items() if k != "nb_features"}
    cases = []
    for length in lengths:
        cases += [Case(f"carp-38m L{length}", "conv", conv38, length, tokens),
                  Case(f"esm2(carp-38m shape) L{length}", "esm", esm38, length, tokens),
                  Case(f"carp-640m L{length}", "conv", conv640, length, tokens // 2),
                  Case(f"esm2(carp-640m shape) L{length}", "esm", esm640, length, tokens // 2)]  # fmt: skip
    for length in long_lengths:
        tpb = max(long_lengths)
        cases += [Case(f"performer-base L{length}", "performer", base, length, tpb),
                  Case(f"performer-base softmax L{length}", "performer", base, length, tpb, "softmax"),
                  Case(f"esm2(performer-base shape) L{length}", "esm", esm_base, length, tpb)]  # fmt: skip
    # The cases the goals read first (Conv and ESM-2 at the longer length, every Performer-shape case at
    # the longest), so that a spent budget skips the others; then four of them compiled.
    first = [
        c for c in cases if c.length == max(long_lengths) or (c.family != "performer" and c.length == max(lengths))
    ]
    cases = first + [c for c in cases if c not in first]
    main = [c for c in first if c.family != "esm" or c.shape is esm38][:2] + [
        c for c in first if c.family == "performer"
    ]
    cases += [
        Case(c.label + " compiled", c.family, c.shape, c.length, c.tokens_per_batch, c.attention, True) for c in main
    ]
    return cases


def section_throughput(report: Report, device: torch.device, tiny: bool, budget: Budget) -> None:
    peak = matmul_rate(device, 512 if tiny else 8192)
    report.add("throughput", {"case": "bf16 matmul", "tflops": f"{peak / 1e12:.2f}"})
    warmup, steps = (1, 2) if tiny else (3, 8)
    backend = "eager" if tiny else "inductor"  # on a CPU, inductor's C++ build alone takes minutes
    for case in throughput_cases(tiny):
        if budget.left() <= 0:
            report.add("throughput", {"case": case.label, "skipped": "section budget spent"})
            continue
        try:
            seconds = time_training_step(case, device, warmup, steps, backend)
        except torch.OutOfMemoryError as error:
            report.add("throughput", {"case": case.label, "skipped": f"out of memory: {str(error)[:80]}"})
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        tokens = max(1, case.tokens_per_batch // case.length) * case.length
        flops = 3 * forward_flops_per_token(case) * tokens / seconds
        report.add(
            "throughput",
            {
                "case": case.label,
                "tokens_per_batch": tokens,
                "step_ms": f"{1000 * seconds:.1f}",
                "tokens_per_s": f"{tokens / seconds:,.0f}",
                "tflops": f"{flops / 1e12:.2f}",
                "mfu": f"{flops / peak:.1%}",
            },
        )


# ---------------------------------------------------------------- section 4: embed against the bare forward


def write_fasta(path: Path, records: list[tuple[str, str]]) -> None:
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in records))


def bare_forward_seconds(model_dir: Path, sequences: list[str], budget_tokens: int, device: torch.device) -> float:
    from protconv.inference.common import plan_batches
    from protconv.tokenization.encoding import SequenceEncoder

    model = AutoModel.from_pretrained(model_dir, dtype=torch.bfloat16).to(device).eval()
    encoder = SequenceEncoder(_TOKENIZER)
    plans = plan_batches([len(s) for s in sequences], budget_tokens, encoder.framing.special_tokens)
    batches = [encoder([sequences[i] for i in plan], device) for plan in plans]
    with torch.inference_mode():
        model(**batches[0])
        sync(device)
        start = time.perf_counter()
        for batch in batches:
            model(**batch)
        sync(device)
    return time.perf_counter() - start


def section_embed(report: Report, device: torch.device, tiny: bool, budget: Budget) -> None:
    from protconv.inference import embed

    count, preset = (48, "carp-600k") if tiny else (4000, "carp-38m")
    records = [(r.id, r.sequence) for r in read_fasta(CORPUS)][:count]
    residues = sum(len(s) for _, s in records)
    with tempfile.TemporaryDirectory() as tmp:
        folder, fasta, one = Path(tmp) / "model", Path(tmp) / "all.fasta", Path(tmp) / "one.fasta"
        config = protconv.ConvConfig(**TINY_CONV) if tiny else protconv.ConvConfig.from_preset(preset)
        protconv.ConvForMaskedLM(config).save_pretrained(folder)
        _TOKENIZER.save_pretrained(folder)
        write_fasta(fasta, records)
        write_fasta(one, records[:1])
        options = {"dtype": "bfloat16", "device": device, "progress": False, "overwrite": True}
        embed(folder, one, Path(tmp) / "warm.h5", **options)  # warms the kernels and the file system
        fixed = embed(folder, one, Path(tmp) / "one.h5", **options).seconds
        total = embed(folder, fasta, Path(tmp) / "all.h5", **options).seconds
        bare = bare_forward_seconds(folder, [s for _, s in records], 16384, device)
    steady = max(total - fixed, 1e-9)
    ratio = bare / steady
    report.add("embed", {
        "model": "tiny conv" if tiny else preset, "records": count, "residues": residues,
        "embed_end_to_end_res_per_s": f"{residues / total:,.0f}", "embed_res_per_s": f"{residues / steady:,.0f}",
        "bare_forward_res_per_s": f"{residues / bare:,.0f}", "embed_over_bare": f"{ratio:.2f}"})  # fmt: skip


# ---------------------------------------------------------------- the run


SECTIONS = {
    "correctness": section_correctness,
    "pretraining": section_pretraining,
    "throughput": section_throughput,
    "embed": section_embed,
}


def markdown(report: Report, device: torch.device, tiny: bool) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    lines = [f"Device: {name}; torch {torch.__version__}; {'--tiny (code paths only)' if tiny else 'full sizes'}", ""]
    for section, rows in report.rows.items():
        header = list(dict.fromkeys(key for row in rows for key in row))
        lines += [f"### {section}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(str(row.get(h, "")) for h in header) + " |" for row in rows]
        lines.append("")
    lines.append("Failed checks: " + ("; ".join(report.failures) if report.failures else "none"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny models and lengths: every section in seconds")
    parser.add_argument("--budget_s", type=float, default=100.0, help="seconds per section")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset, in this order")
    parser.add_argument("--out", type=Path, help="also write the tables here (markdown)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    say(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'no GPU'}), torch "
        f"{torch.__version__}, budget {args.budget_s:.0f}s per section{', tiny' if args.tiny else ''}")  # fmt: skip
    report = Report()
    for name in args.sections.split(","):
        start = time.perf_counter()
        say(f"== {name}")
        try:
            SECTIONS[name](report, device, args.tiny, Budget(args.budget_s))
        except Exception as error:  # a broken section must not hide the others' figures
            report.check(False, f"section {name} raised {type(error).__name__}: {error}")
        say(f"== {name} done in {time.perf_counter() - start:.1f}s")
        if args.out:
            args.out.write_text(markdown(report, device, args.tiny))
    say("failed checks: " + ("; ".join(report.failures) if report.failures else "none"))
    return report


if __name__ == "__main__":
    sys.exit(1 if main().failures else 0)
