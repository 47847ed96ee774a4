"""Every inference command on a transformers model that protconv does not define: a tiny ESM-2-shaped
``EsmForMaskedLM`` saved with its own ``EsmTokenizer`` (``examples/tiny_esm.py``, no Hub). Each number is checked
against the same computation written with transformers alone; folders the commands cannot read are errors naming
the folder and what is missing."""

from __future__ import annotations

import csv
import json
import math

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import EsmForMaskedLM, EsmForSequenceClassification, EsmTokenizer

from examples.tiny_esm import esm_tokenizer, save_tiny_esm
from protconv.cli import main
from protconv.evaluation import EvaluateOptions, evaluate, read_suite
from protconv.inference import InferenceInputError
from protconv.inference.embed import embed
from protconv.inference.scan import saturation_scan
from protconv.inference.score import score
from protconv.model_source import UnknownTokenizerError
from tests.helpers import DATA

from .conftest import write_fasta

WILDTYPE = "MKTAYIAKQRQISFVKSHFS"
MUTANTS = ["M1A", "K2R:T3S", "S20W", "WT", "Y5F:I6L:Q11E"]


@pytest.fixture(scope="module")
def esm_folder(tmp_path_factory):
    return save_tiny_esm(tmp_path_factory.mktemp("esm") / "esm")


def masked_marginal(folder, sequence: str, mutant: str) -> float:
    """ESM-1v's masked marginal with transformers alone: mask the position, log_softmax, mutant minus wild type."""
    model, tokenizer = EsmForMaskedLM.from_pretrained(folder).eval(), EsmTokenizer.from_pretrained(folder)
    ids = tokenizer(sequence, return_tensors="pt")["input_ids"]
    total = 0.0
    for part in [] if mutant == "WT" else mutant.split(":"):
        wt, position, mt = part[0], int(part[1:-1]), part[-1]
        masked = ids.clone()
        masked[0, position] = tokenizer.mask_token_id  # <cls> is token 0: residue i is token i
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=masked).logits[0, position], dim=-1)
        total += float(log_probs[tokenizer.convert_tokens_to_ids(mt)] - log_probs[tokenizer.convert_tokens_to_ids(wt)])
    return total


def test_score_equals_the_masked_marginal_of_transformers_alone(tmp_path, esm_folder) -> None:
    variants = tmp_path / "v.csv"
    variants.write_text("mutant\n" + "\n".join(MUTANTS) + "\n", encoding="utf-8")
    assert main(["score", str(esm_folder), str(variants), str(tmp_path / "s.csv"), "--sequence", WILDTYPE,
                 "--no_progress"]) == 0  # fmt: skip
    with open(tmp_path / "s.csv", encoding="utf-8", newline="") as handle:
        scored = {row["mutant"]: float(row["masked_marginal"]) for row in csv.DictReader(handle)}
    expected = {mutant: masked_marginal(esm_folder, WILDTYPE, mutant) for mutant in MUTANTS}
    assert scored == pytest.approx(expected, abs=1e-5)
    assert len({round(value, 6) for value in scored.values()}) == len(MUTANTS)  # not a constant


def test_embed_equals_the_last_hidden_state_mean_over_residues(tmp_path, esm_folder, capfd) -> None:
    """``mean`` leaves out <cls> and <eos> (protconv's convention for its own models); ``cls`` is token 0; layer
    -1 is ``hidden_states[-1]``. The missing pooler is dropped, not random: a rerun has the same fingerprint."""
    records = [("a", WILDTYPE), ("b", "MSTNPKPQRKTKRNTNRRPQDVKFPGG")]
    fasta = write_fasta(tmp_path / "x.fasta", records)
    output = tmp_path / "e.h5"
    argv = ["embed", str(esm_folder), str(fasta), str(output), "--include", "mean,cls", "--layers", "last", "-1"]
    assert main([*argv, "--no_progress"]) == 0
    assert "LOAD REPORT" not in capfd.readouterr().err
    model, tokenizer = EsmForMaskedLM.from_pretrained(esm_folder).eval(), EsmTokenizer.from_pretrained(esm_folder)
    with h5py.File(output) as store:
        assert list(store.attrs["layers"]) == ["last", "2"]
        for name, sequence in records:
            with torch.no_grad():
                out = model.esm(**tokenizer(sequence, return_tensors="pt"), output_hidden_states=True)
            last = out.last_hidden_state[0]
            np.testing.assert_allclose(store[name]["mean"][0], last[1:-1].mean(0).numpy(), atol=1e-5)
            np.testing.assert_allclose(store[name]["mean"][1], out.hidden_states[-1][0, 1:-1].mean(0), atol=1e-5)
            np.testing.assert_allclose(store[name]["cls"][0], last[0].numpy(), atol=1e-5)
    again = embed(esm_folder, fasta, output, include="mean,cls", layers=["last", "-1"], progress=False)
    assert (again.written, again.skipped) == (0, 2)  # same weights fingerprint: the pooler was not random


def test_other_missing_weights_are_still_refused(tmp_path, esm_folder) -> None:
    broken = save_tiny_esm(tmp_path / "broken")
    weights = load_file(broken / "model.safetensors")
    del weights["esm.encoder.layer.1.output.dense.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(InferenceInputError, match=r"lacks weights of EsmModel \(encoder.layer.1.output.dense.weight"):
        embed(broken, write_fasta(tmp_path / "x.fasta", [("a", WILDTYPE)]), tmp_path / "e.h5", progress=False)


def test_predict_equals_the_regression_head(tmp_path) -> None:
    folder = save_tiny_esm(tmp_path / "reg", regression=True)
    sequences = [("a", WILDTYPE), ("b", "MSTNPKPQRK")]
    assert main(["predict", str(folder), str(write_fasta(tmp_path / "x.fasta", sequences)),
                 str(tmp_path / "p.csv"), "--no_progress"]) == 0  # fmt: skip
    with open(tmp_path / "p.csv", encoding="utf-8", newline="") as handle:
        predicted = {row["id"]: float(row["prediction"]) for row in csv.DictReader(handle)}
    model, tokenizer = EsmForSequenceClassification.from_pretrained(folder).eval(), esm_tokenizer()
    with torch.no_grad():
        expected = {name: float(model(**tokenizer(s, return_tensors="pt")).logits[0, 0]) for name, s in sequences}
    assert predicted == pytest.approx(expected, abs=1e-5)


def test_scan_and_evaluate_run_on_the_esm_folder(tmp_path, esm_folder) -> None:
    scanned = saturation_scan(esm_folder, tmp_path / "scan.csv", sequence=WILDTYPE, positions="2-2", progress=False)
    by_name = dict(zip([v.name for v in scanned.variants], scanned.scores, strict=True))
    assert len(by_name) == 19 and by_name["K2R"] == pytest.approx(masked_marginal(esm_folder, WILDTYPE, "K2R"))
    (tmp_path / "held.fasta").write_text(f">s\n{WILDTYPE}\n", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(
        "- name: ppl\n  kind: perplexity\n  fasta: held.fasta\n"
        f"- name: st\n  kind: regression\n  train_file: {DATA / 'stability_train_slice.csv'}\n"
        f"  test_file: {DATA / 'stability_valid_slice.csv'}\n  cnn_epochs: 1\n",
        encoding="utf-8",
    )
    result = evaluate([str(esm_folder)], read_suite(tmp_path / "s.yaml"), EvaluateOptions(tmp_path / "o", bootstrap=0))
    rows = {(r.task, r.model, r.metric): r.value for r in result.records if r.assay is None}
    pll = sum(masked_marginal_pll(esm_folder, WILDTYPE))
    assert rows["ppl", str(esm_folder), "perplexity"] == pytest.approx(math.exp(-pll / len(WILDTYPE)), rel=1e-4)
    assert -1 <= rows["st", str(esm_folder), "spearman"] <= 1
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["models"][0]["weights_fingerprint"] == result.fingerprints[str(esm_folder)]


def masked_marginal_pll(folder, sequence: str) -> list[float]:
    """Each residue's log-probability with that residue alone masked (transformers alone)."""
    model, tokenizer = EsmForMaskedLM.from_pretrained(folder).eval(), EsmTokenizer.from_pretrained(folder)
    ids = tokenizer(sequence, return_tensors="pt")["input_ids"]
    values = []
    for token in range(1, len(sequence) + 1):
        masked = ids.clone()
        masked[0, token] = tokenizer.mask_token_id
        with torch.no_grad():
            values.append(float(torch.log_softmax(model(input_ids=masked).logits[0, token], -1)[ids[0, token]]))
    return values


@pytest.mark.parametrize("positions", ["rotary", "absolute"])
def test_the_position_limit_is_1022_residues_naming_the_record(tmp_path, positions) -> None:
    """ESM-1b's learned positions start at pad_token_id + 1 (1024 tokens of 1026 rows); ESM-2 (rotary) was
    trained on the same 1024. 1022 residues run (no IndexError), 1023 are refused before any model work."""
    folder = save_tiny_esm(tmp_path / positions, position_embedding_type=positions)
    fits = write_fasta(tmp_path / "fits.fasta", [("fits", "A" * 1022)])
    assert embed(folder, fits, tmp_path / "fits.h5", progress=False).written == 1
    long = write_fasta(tmp_path / "long.fasta", [("ok", WILDTYPE), ("too_long", "A" * 1023)])
    with pytest.raises(InferenceInputError, match=r"record 'too_long': 1025 tokens .* limit of 1024 tokens"):
        embed(folder, long, tmp_path / "long.h5", progress=False)


def test_folders_without_a_usable_tokenizer_are_errors_naming_them(tmp_path, esm_folder, capsys) -> None:
    fasta = write_fasta(tmp_path / "x.fasta", [("a", WILDTYPE)])
    bare = save_tiny_esm(tmp_path / "bare")
    for name in ("vocab.txt", "tokenizer_config.json"):
        (bare / name).unlink()
    with pytest.raises(UnknownTokenizerError, match=rf"^{bare}: a esm folder without tokenizer files"):
        embed(bare, fasta, tmp_path / "e.h5", progress=False)
    words = save_tiny_esm(tmp_path / "words")
    (words / "vocab.txt").write_text("\n".join(["<cls>", "<pad>", "<eos>", "<unk>", "the", "protein", "<mask>"]))
    assert main(["embed", str(words), str(fasta), str(tmp_path / "e.h5")]) == 2
    assert f"{words}: its tokenizer (EsmTokenizer) has no token for the amino acids ACDEFGHIKLMNPQRSTVWY" in (
        capsys.readouterr().err
    )
    unmasked = save_tiny_esm(tmp_path / "unmasked")
    EsmTokenizer(str(unmasked / "vocab.txt"), mask_token=None).save_pretrained(unmasked)
    variants = tmp_path / "v.csv"
    variants.write_text("mutant\nM1A\n", encoding="utf-8")
    with pytest.raises(InferenceInputError, match=rf"^{unmasked}: its tokenizer has no mask token"):
        score(unmasked, variants, tmp_path / "s.csv", sequence=WILDTYPE, progress=False)


@pytest.mark.parametrize("flags", [["--layers", "-1", "-2"], ["--layers=-1,-2"], ["--layers", "-1,-2"]])
def test_negative_layers_are_accepted_in_every_spelling(tmp_path, esm_folder, flags) -> None:
    fasta = write_fasta(tmp_path / "x.fasta", [("a", WILDTYPE)])
    assert main(["embed", str(esm_folder), str(fasta), str(tmp_path / "e.h5"), *flags, "--no_progress"]) == 0
    with h5py.File(tmp_path / "e.h5") as store:
        assert list(store.attrs["layers"]) == ["2", "1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line_naming_the_flag(tmp_path, esm_folder, capsys) -> None:
    fasta = write_fasta(tmp_path / "x.fasta", [("a", WILDTYPE)])
    assert main(["embed", str(esm_folder), str(fasta), str(tmp_path / "e.h5"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: no CUDA GPU is available" in err and "Traceback" not in err
