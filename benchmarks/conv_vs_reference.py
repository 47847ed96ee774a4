"""protconv ConvForMaskedLM vs the reference CARP ``sequence_models.ByteNetLM``, same weights, one run.

carp-38m shape, fp32, CPU, a batch of real proteins padded to the longest. The two models are timed in
alternation so that machine noise hits both alike; the figure of merit is the ratio of median times
(> 1.0: protconv faster).

    .venv/bin/python benchmarks/conv_vs_reference.py [--preset carp-38m] [--batch 8] [--max-length 250] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from sequence_models.constants import MASK, PAD, PROTEIN_ALPHABET
from sequence_models.convolutional import ByteNetLM

import protconv
from protconv.conversion import CARP_ALPHABET, carp_state_dict, carp_token_map
from protconv.data import read_fasta

PROTEINS = Path(__file__).resolve().parents[1] / "tests" / "data" / "some_proteins.fasta"


def build_pair(preset: str) -> tuple[ByteNetLM, protconv.ConvForMaskedLM]:
    config = protconv.ConvConfig.from_preset(preset)
    reference = ByteNetLM(
        len(PROTEIN_ALPHABET),
        config.embedding_size,
        config.hidden_size,
        config.num_hidden_layers,
        config.kernel_size,
        config.max_dilation,
        padding_idx=PROTEIN_ALPHABET.index(MASK),
        final_ln=True,
        slim=config.intermediate_size < config.hidden_size,
        activation="gelu",
        dropout=0.0,
    ).eval()
    ours = protconv.ConvForMaskedLM(config).eval()
    ours.load_state_dict(carp_state_dict(reference.state_dict(), config, Path("<benchmark>")))
    return reference, ours


def time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="carp-38m")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=250, help="use proteins up to this length")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)

    sequences = [r.sequence for r in read_fasta(PROTEINS) if len(r.sequence) <= args.max_length][: args.batch]
    tokenizer = protconv.build_tokenizer(add_cls=False, add_eos=False)
    batch = tokenizer(sequences, padding=True, return_tensors="pt")
    pad = PROTEIN_ALPHABET.index(PAD)
    tokens = torch.full(batch["input_ids"].shape, pad)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor([PROTEIN_ALPHABET.index(c) for c in sequence])
    input_mask = (tokens != pad).unsqueeze(-1)
    reference, ours = build_pair(args.preset)

    def run_reference() -> torch.Tensor:
        return reference(tokens, input_mask=input_mask)

    def run_ours() -> torch.Tensor:
        return ours(**batch).logits

    with torch.inference_mode():
        real = batch["attention_mask"].bool()
        columns = [carp_token_map()[i] for i in range(len(CARP_ALPHABET))]
        max_diff = (run_ours()[..., columns][real] - run_reference()[real]).abs().max().item()
        ref_times, our_times = [], []
        for _ in range(args.repeats):
            ref_times.append(time_once(run_reference))
            our_times.append(time_once(run_ours))

    ref_median, our_median = statistics.median(ref_times), statistics.median(our_times)
    lengths = [len(s) for s in sequences]
    print(
        f"preset {args.preset}, batch {len(sequences)} real proteins, lengths {min(lengths)}-{max(lengths)} "
        f"(padded to {tokens.shape[1]}), {torch.get_num_threads()} threads, fp32, {args.repeats} repeats"
    )
    print(f"max |logit difference| (CARP tokens, real residues): {max_diff:.2e}")
    print(f"sequence_models ByteNetLM : median {ref_median * 1e3:8.1f} ms  (min {min(ref_times) * 1e3:.1f})")
    print(f"protconv ConvForMaskedLM  : median {our_median * 1e3:8.1f} ms  (min {min(our_times) * 1e3:.1f})")
    print(f"speed ratio reference/protconv: {ref_median / our_median:.3f}")


if __name__ == "__main__":
    main()
