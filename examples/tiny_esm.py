"""A tiny ESM-2-shaped folder (random weights) saved as ``facebook/esm2_*`` folders are: ``EsmForMaskedLM`` weights
and ESM's own ``EsmTokenizer`` (``vocab.txt`` + ``tokenizer_config.json``, no ``tokenizer.json``).

It lets every protconv command be tried on a transformers ESM folder without a download, e.g.
``python examples/tiny_esm.py tiny-esm`` then ``protconv score tiny-esm ...``; a real ESM-2 is the same with
``facebook/esm2_t6_8M_UR50D``. ``--regression`` saves an ``EsmForSequenceClassification`` (one output) instead,
the shape of a fine-tuned model for ``protconv predict``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers import EsmConfig, EsmForMaskedLM, EsmForSequenceClassification, EsmTokenizer

#: ESM-2's alphabet in its order (fair-esm ``Alphabet.from_architecture("ESM-1b")``): ids 0..32.
ESM_VOCABULARY = [
    "<cls>",
    "<pad>",
    "<eos>",
    "<unk>",
    "L",
    "A",
    "G",
    "V",
    "S",
    "E",
    "R",
    "T",
    "I",
    "D",
    "P",
    "K",
    "Q",
    "N",
    "F",
    "Y",
    "M",
    "H",
    "W",
    "C",
    "X",
    "B",
    "U",
    "Z",
    "O",
    ".",
    "-",
    "<null_1>",
    "<mask>",
]


def tiny_esm_config(**overrides) -> EsmConfig:
    """ESM-2's shape (rotary positions, 1026 position rows, token dropout) at hidden size 32 and two layers."""
    fields = dict(
        vocab_size=len(ESM_VOCABULARY), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=1026, position_embedding_type="rotary", pad_token_id=1,
        mask_token_id=32, token_dropout=True,
    )  # fmt: skip
    return EsmConfig(**{**fields, **overrides})


def esm_tokenizer() -> EsmTokenizer:
    with tempfile.TemporaryDirectory() as folder:
        vocab = Path(folder) / "vocab.txt"
        vocab.write_text("\n".join(ESM_VOCABULARY) + "\n", encoding="utf-8")
        return EsmTokenizer(str(vocab))


def save_tiny_esm(folder: str | Path, regression: bool = False, seed: int = 0, **overrides) -> Path:
    """A tiny ESM folder with random weights (seeded) and ESM's tokenizer; ``overrides`` change the config."""
    torch.manual_seed(seed)
    config = tiny_esm_config(**overrides)
    if regression:
        config.num_labels, config.problem_type = 1, "regression"
    model = (EsmForSequenceClassification if regression else EsmForMaskedLM)(config).eval()
    model.save_pretrained(folder)
    esm_tokenizer().save_pretrained(folder)
    return Path(folder)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="folder to write")
    parser.add_argument("--regression", action="store_true", help="a sequence-regression head instead of the LM")
    args = parser.parse_args()
    print(f"saved {save_tiny_esm(args.folder, args.regression)}")
