"""CARP checkpoint conversion: exact parity with sequence_models' ByteNetLM, and clear errors on bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from sequence_models.constants import MASK, PAD, PROTEIN_ALPHABET
from sequence_models.convolutional import ByteNetLM
from transformers import AutoModelForMaskedLM, AutoTokenizer

from protconv.cli import main as cli_main
from protconv.conversion import CARP_ALPHABET, CarpCheckpointError, carp_token_map, convert_carp

CARP_600K = {
    "d_embed": 8,
    "d_model": 128,
    "n_layers": 16,
    "kernel_size": 5,
    "activation": "gelu",
    "slim": True,
    "r": 128,
}
# Not a released size: ReLU, non-slim blocks, a shorter dilation cycle and a wider kernel.
ODD_SHAPE = {"d_embed": 6, "d_model": 48, "n_layers": 5, "kernel_size": 7, "activation": "relu", "slim": False, "r": 4}


def reference_model(hparams: dict) -> ByteNetLM:
    """A ByteNetLM as sequence_models' load_carp builds it, with non-trivial random weights everywhere."""
    model = ByteNetLM(
        len(PROTEIN_ALPHABET),
        hparams["d_embed"],
        hparams["d_model"],
        hparams["n_layers"],
        hparams["kernel_size"],
        hparams["r"],
        padding_idx=PROTEIN_ALPHABET.index(MASK),
        final_ln=True,
        slim=hparams["slim"],
        activation=hparams["activation"],
        dropout=0.0,
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "sequence" in name or "last_norm" in name:  # LayerNorms start at 1/0: perturb them too
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def write_checkpoint(path: Path, model: ByteNetLM, hparams: dict) -> Path:
    torch.save({"model_state_dict": model.state_dict(), "model": "carp_test", **hparams}, path)
    return path


def reference_outputs(model: ByteNetLM, sequences: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """CARP's own inference path: padded with its pad token, the padding mask fed to every block."""
    pad = PROTEIN_ALPHABET.index(PAD)
    tokens = torch.full((len(sequences), max(map(len, sequences))), pad)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor([PROTEIN_ALPHABET.index(c) for c in sequence])
    mask = (tokens != pad).unsqueeze(-1)
    with torch.no_grad():
        hidden = model.embedder._embed(tokens)
        layers = [hidden]
        for block in model.embedder.layers:
            hidden = block(hidden, input_mask=mask)
            layers.append(hidden)
        return model(tokens, input_mask=mask), layers


@pytest.mark.parametrize("hparams", [CARP_600K, ODD_SHAPE], ids=["carp-600k", "odd-shape"])
def test_converted_model_matches_reference(tmp_path, real_proteins, hparams) -> None:
    reference = reference_model(hparams)
    folder = convert_carp(write_checkpoint(tmp_path / "carp.pt", reference, hparams), tmp_path / "hub")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    model.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    sequences = real_proteins[:6]
    batch = tokenizer(sequences, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] == max(map(len, sequences)), "CARP input has no start/stop tokens"
    with torch.no_grad():
        ours = model(**batch, output_hidden_states=True)
    logits, layers = reference_outputs(reference, sequences)
    real = batch["attention_mask"].bool()
    columns = [carp_token_map()[i] for i in range(len(CARP_ALPHABET))]
    torch.testing.assert_close(ours.logits[..., columns][real], logits[real], rtol=0, atol=1e-5)
    assert len(ours.hidden_states) == len(layers) == hparams["n_layers"] + 1
    for mine, theirs in zip(ours.hidden_states, layers, strict=True):
        torch.testing.assert_close(mine[real], theirs[real], rtol=0, atol=1e-5)
    # Tokens CARP never saw are never predicted: the softmax over CARP's 30 tokens is unchanged.
    probabilities = torch.softmax(ours.logits, -1)[..., columns].sum(-1)
    torch.testing.assert_close(probabilities, torch.ones_like(probabilities))


def test_progress_bar_names_the_stages_and_stays_off_the_logs(tmp_path, capsys) -> None:
    checkpoint = write_checkpoint(tmp_path / "carp.pt", reference_model(ODD_SHAPE), ODD_SHAPE)
    convert_carp(checkpoint, tmp_path / "quiet")  # stderr is not a terminal here: no bar by default
    assert "convert-carp" not in capsys.readouterr().err
    convert_carp(checkpoint, tmp_path / "shown", progress=True)
    err = capsys.readouterr().err
    assert all(stage in err for stage in ("reading the checkpoint", "mapping the weights", "writing the folder"))


def test_cli_converts_and_reports_errors(tmp_path, capsys) -> None:
    checkpoint = write_checkpoint(tmp_path / "carp.pt", reference_model(ODD_SHAPE), ODD_SHAPE)
    assert cli_main(["convert-carp", str(checkpoint), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    capsys.readouterr()
    assert cli_main(["convert-carp", str(checkpoint), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "exists and is not empty; pass --overwrite to replace it" in err and "overwrite=True" not in err
    assert cli_main(["convert-carp", str(checkpoint), str(tmp_path / "out"), "--overwrite"]) == 0


class Payload:
    """An arbitrary object: unpickling it would run code of the file's choosing."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_corrupt_foreign_and_malicious_files_are_refused(tmp_path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    with pytest.raises(CarpCheckpointError, match=r"garbage\.pt: not a readable PyTorch checkpoint"):
        convert_carp(garbage, tmp_path / "a")
    malicious = tmp_path / "malicious.pt"
    with open(malicious, "wb") as handle:
        pickle.dump({"model_state_dict": {}, "hook": Payload()}, handle)
    with pytest.raises(CarpCheckpointError, match=r"malicious\.pt"):
        convert_carp(malicious, tmp_path / "b")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CarpCheckpointError, match="expected a dict with 'model_state_dict'"):
        convert_carp(foreign, tmp_path / "c")
    wrong_arch = tmp_path / "wrong.pt"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}, **CARP_600K}, wrong_arch)
    with pytest.raises(CarpCheckpointError, match="not a CARP ByteNetLM state dict"):
        convert_carp(wrong_arch, tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_inconsistent_or_missing_hyperparameters(tmp_path) -> None:
    model = reference_model(ODD_SHAPE)
    lying = write_checkpoint(tmp_path / "lying.pt", model, {**ODD_SHAPE, "n_layers": 7})
    with pytest.raises(CarpCheckpointError, match="recorded n_layers=7 but the weights say 5"):
        convert_carp(lying, tmp_path / "a")
    incomplete = write_checkpoint(tmp_path / "incomplete.pt", model, {k: v for k, v in ODD_SHAPE.items() if k != "r"})
    with pytest.raises(CarpCheckpointError, match="hyper-parameter 'r' missing"):
        convert_carp(incomplete, tmp_path / "b")
