"""protconv demo: build a CARP-shaped Conv model, save it Hub-ready, reload it through the Auto classes, fill
masks in a real protein and embed it.

The weights are random until pretraining (or `protconv convert-carp`) provides real ones, so the predicted
residues are not meaningful yet; what the demo shows is the full save -> Auto load -> inference path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

import protconv
from protconv.data import read_fasta
from protconv.hub import model_card, save_hub_folder

PROTEINS = Path(__file__).resolve().parents[1] / "tests" / "data" / "few_proteins.fasta"


def main() -> None:
    torch.manual_seed(0)
    record = next(read_fasta(PROTEINS))
    model = protconv.ConvForMaskedLM(protconv.ConvConfig.from_preset("carp-600k")).eval()
    tokenizer = protconv.build_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_hub_folder(
            model, tokenizer, Path(tmp) / "carp-600k-random", card=model_card(model, "demo", "Random weights.")
        )
        print(f"saved {sorted(p.name for p in folder.iterdir())}")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        reloaded = AutoModelForMaskedLM.from_pretrained(folder).eval()
        encoder = AutoModel.from_pretrained(folder).eval()

    sequence = record.sequence[:60]
    positions = [10, 25, 40]
    masked = "".join("#" if i in positions else aa for i, aa in enumerate(sequence)).replace("#", "<mask>")
    inputs = tokenizer(masked, return_tensors="pt")
    with torch.no_grad():
        logits = reloaded(**inputs).logits[0]
        same = torch.equal(model(**inputs).logits[0], logits)
        embedding = encoder(**tokenizer(sequence, return_tensors="pt")).pooler_output[0]
    print(f"reloaded model reproduces the saved one exactly: {same}")
    print(f"protein {record.id}, first 60 residues: {sequence}")
    mask_rows = (inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
    for position, row in zip(positions, mask_rows.tolist(), strict=True):
        top = torch.softmax(logits[row], -1).topk(3)
        guesses = ", ".join(f"{tokenizer.convert_ids_to_tokens(int(i))} {p:.2f}" for p, i in zip(*top, strict=True))
        print(f"  residue {position + 1} (true {sequence[position]}): {guesses}")
    print(f"protein embedding: {tuple(embedding.shape)}, norm {embedding.norm():.3f}")


if __name__ == "__main__":
    main()
