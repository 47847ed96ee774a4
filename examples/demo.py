"""protconv demo: pretrain a small CARP-shaped Conv model on 4,000 real proteins, on CPU, in a few minutes.

1. pretrain carp-600k with masked LM (examples/configs/demo.yaml, the same loop as `accelerate launch
   examples/pretrain.py`), printing validation perplexity before and after (a uniform guess over the 20 amino
   acids scores 20);
2. the run ends with a Hub-ready folder (weights, config with auto_map, code, tokenizer, model card);
3. reload it through the Auto classes and fill masks in a real protein that was not in the training data.

Extra flags are passed to the pretraining parser, e.g. `python examples/demo.py --max_steps 100`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

import protconv  # noqa: F401  (registers the Auto classes)
from protconv.data import read_fasta
from protconv.pretraining import parse_arguments, pretrain

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "configs" / "demo.yaml"
PROTEIN = ROOT / "tests" / "data" / "few_proteins.fasta"  # UniRef50 entries, not in the training slice


def main(argv: list[str]) -> None:
    model_args, data_args, train_args = parse_arguments(["--config", str(CONFIG), "--overwrite_output_dir", *argv])
    data_args.train_files = [str(ROOT / path) for path in data_args.train_files]
    train_args.output_dir = str(ROOT / train_args.output_dir)
    print(f"pretraining {model_args.model} on {', '.join(Path(p).name for p in data_args.train_files)} ...")
    result = pretrain(model_args, data_args, train_args)
    before, after = _validation_perplexities(Path(train_args.output_dir) / "metrics.jsonl")
    print(f"\nvalidation perplexity: {before:.2f} before training -> {after:.2f} after {result.step} steps")
    print("(a uniform guess over the 20 amino acids: 20)")
    print(f"Hub-ready folder: {result.model_dir} ({', '.join(sorted(p.name for p in result.model_dir.iterdir()))})")
    fill_masks(result.model_dir)


def _validation_perplexities(metrics: Path) -> tuple[float, float]:
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    validation = [row["perplexity"] for row in rows if row["split"] == "validation"]
    return validation[0], validation[-1]


def fill_masks(folder: Path) -> None:
    """Mask every 7th residue of a real protein and show what the reloaded model predicts."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    record = next(read_fasta(PROTEIN))
    sequence = record.sequence[:140]
    positions = list(range(3, len(sequence), 7))
    masked = "".join(tokenizer.mask_token if i in positions else aa for i, aa in enumerate(sequence))
    inputs = tokenizer(masked, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits[0].softmax(-1)
    rows = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
    predicted = [tokenizer.convert_ids_to_tokens(int(probabilities[row].argmax())) for row in rows]
    hits = sum(p == sequence[i] for p, i in zip(predicted, positions, strict=True))
    print(
        f"\nreloaded with AutoModelForMaskedLM; protein {record.id}, first {len(sequence)} residues, every 7th masked:"
    )
    for position, row in list(zip(positions, rows, strict=True))[:6]:
        top = probabilities[row].topk(3)
        guesses = ", ".join(f"{tokenizer.convert_ids_to_tokens(int(i))} {p:.2f}" for p, i in zip(*top, strict=True))
        print(f"  residue {position + 1} (true {sequence[position]}): {guesses}")
    print(f"  top-1 correct at {hits}/{len(positions)} masked positions (uniform guessing: ~{len(positions) / 20:.1f})")


if __name__ == "__main__":
    main(sys.argv[1:])
