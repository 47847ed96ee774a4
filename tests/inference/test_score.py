"""score: each method against a hand computation, both tokenizer framings, offsets, CSV dialects, bad rows."""

from __future__ import annotations

import csv
import functools
import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from protconv.inference import InferenceInputError, parse_mutant, score

from .conftest import write_fasta

WILDTYPE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQ"
ATOL = 1e-4


@functools.cache
def _loaded(folder):
    return AutoModelForMaskedLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def masked_log_probs(folder, sequence: str, index: int | None) -> torch.Tensor:
    """log p over the vocabulary at residue ``index`` with that residue masked (None: unmasked, all residues)."""
    model, tokenizer = _loaded(folder)
    ids = tokenizer(sequence, return_tensors="pt")["input_ids"]
    first = 1 if ids[0, 0] == tokenizer.cls_token_id else 0  # the framing, read off the tokens
    if index is not None:
        ids[0, first + index] = tokenizer.mask_token_id
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0], dim=-1)
    return log_probs[first + index] if index is not None else log_probs[first : first + len(sequence)]


def token(folder, letter: str) -> int:
    return _loaded(folder)[1].convert_tokens_to_ids(letter)


def hand_masked_marginal(folder, wildtype: str, mutant: str, offset: int) -> float:
    total = 0.0
    for part in mutant.split(":"):
        wt, index, mt = part[0], int(part[1:-1]) - offset, part[-1]
        log_probs = masked_log_probs(folder, wildtype, index)
        total += float(log_probs[token(folder, mt)] - log_probs[token(folder, wt)])
    return total


def hand_pseudo_log_likelihood(folder, sequence: str) -> float:
    return sum(float(masked_log_probs(folder, sequence, i)[token(folder, sequence[i])]) for i in range(len(sequence)))


def mutate(sequence: str, mutant: str, offset: int) -> str:
    residues = list(sequence)
    for part in mutant.split(":"):
        residues[int(part[1:-1]) - offset] = part[-1]
    return "".join(residues)


def write_variants(path, mutants: list[str], extra: dict[str, list[str]] | None = None, bom: bool = False, index=False):
    extra = extra or {}
    header = ([""] if index else []) + ["mutant", *extra]
    rows = [([str(i)] if index else []) + [m, *(values[i] for values in extra.values())] for i, m in enumerate(mutants)]
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def read_column(path, column: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [row[column] for row in csv.DictReader(handle)]


MUTANTS = ["K2A", "M1W:T3C", "Q9R", "K2D", "Q83E:L81A:K2A"]


def test_masked_marginal_equals_the_hand_computation(any_folder, tmp_path) -> None:
    """Single and multi-mutants, both tokenizer framings (any_folder includes a CARP-style one), position reuse."""
    variants = write_variants(tmp_path / "v.csv", MUTANTS)
    result = score(
        any_folder, variants, tmp_path / "out.csv", sequence=WILDTYPE, max_tokens_per_batch=300, progress=False
    )
    expected = [hand_masked_marginal(any_folder, WILDTYPE, m, 1) for m in MUTANTS]
    np.testing.assert_allclose(result.scores, expected, atol=ATOL)
    assert result.forwards == 6  # distinct positions 1, 2, 3, 9, 81, 83: each computed once
    assert [float(v) for v in read_column(tmp_path / "out.csv", "masked_marginal")] == result.scores
    assert read_column(tmp_path / "out.csv", "mutant") == MUTANTS


def test_offset_numbers_the_first_residue(conv_folder, tmp_path) -> None:
    shifted = ["K25A", "M24W:T26C"]  # the same mutations as K2A, M1W:T3C with the first residue numbered 24
    plain = score(
        conv_folder,
        write_variants(tmp_path / "a.csv", ["K2A", "M1W:T3C"]),
        tmp_path / "a_out.csv",
        sequence=WILDTYPE,
        progress=False,
    )
    fasta = write_fasta(tmp_path / "wt.fasta", [("wt description", WILDTYPE), ("ignored", "ACD")])
    offset = score(
        conv_folder,
        write_variants(tmp_path / "b.csv", shifted),
        tmp_path / "b_out.csv",
        wildtype=fasta,
        offset=24,
        progress=False,
    )
    np.testing.assert_allclose(offset.scores, plain.scores, atol=1e-6)


@pytest.mark.parametrize("folder", ["conv_folder", "carp_folder"])
def test_wildtype_marginal_equals_the_hand_computation(folder, tmp_path, request) -> None:
    folder = request.getfixturevalue(folder)
    result = score(
        folder,
        write_variants(tmp_path / "v.csv", MUTANTS),
        tmp_path / "out.csv",
        sequence=WILDTYPE,
        method="wildtype-marginal",
        progress=False,
    )
    log_probs = masked_log_probs(folder, WILDTYPE, None)
    expected = [
        sum(
            float(log_probs[int(p[1:-1]) - 1, token(folder, p[-1])] - log_probs[int(p[1:-1]) - 1, token(folder, p[0])])
            for p in m.split(":")
        )
        for m in MUTANTS
    ]
    np.testing.assert_allclose(result.scores, expected, atol=ATOL)
    assert result.forwards == 1
    assert [float(v) for v in read_column(tmp_path / "out.csv", "wildtype_marginal")] == result.scores


@pytest.mark.parametrize("folder", ["carp_folder", "performer_folder"])
def test_pseudo_likelihood_equals_the_hand_computation(folder, tmp_path, request) -> None:
    folder = request.getfixturevalue(folder)
    wildtype = WILDTYPE[:30]
    mutants = ["K2A", "M1W:T3C", "T3C:M1W", "WT"]  # the same double twice (computed once), and the wild type
    result = score(
        folder,
        write_variants(tmp_path / "v.csv", mutants),
        tmp_path / "out.csv",
        sequence=wildtype,
        method="pseudo-likelihood",
        output_column="pll",
        progress=False,
    )
    reference = hand_pseudo_log_likelihood(folder, wildtype)
    expected = [hand_pseudo_log_likelihood(folder, mutate(wildtype, m, 1)) - reference for m in mutants[:3]] + [0.0]
    np.testing.assert_allclose(result.scores, expected, atol=ATOL)
    assert result.forwards == 3 * 30  # wild type, K2A, the double: 30 masked forwards each
    assert len(read_column(tmp_path / "out.csv", "pll")) == 4


def test_bom_and_unnamed_index_column_as_in_the_real_file(carp_folder, tmp_path) -> None:
    """The BLAT_ECOLX file's dialect: UTF-8 BOM, a first column without a name (pandas' index), offset 24. Its
    first 12 rows when the shared data is there, else the same dialect written here."""
    real = Path(__file__).resolve().parents[3] / "shared/data/variants/BLAT_ECOLX_Ranganathan2015.csv"
    try:
        with open(real, "rb") as handle:
            head = b"".join(handle.readline() for _ in range(13))
    except FileNotFoundError:
        head = None
    wildtype = (
        "HPETLVKVKDAEDQLGARVGYIELDLNSGKILESFRPEERFPMMSTFKVLLCGAVLSRVDAGQEQLGRRIHYSQNDLVEYSPVTEKHLTDGMTVRELCSAAITMS"
        "DNTAANLLLTTIGGPKELTAFLHNMGDHVTRLDRWEPELNEAIPNDERDTTMPAAMATTLRKLLTGELLTLASRQQLIDWMEADKVAGPLLRSALPAGWFIADKSGAG"
        "ERGSRGIIAALGPDGKPSRIVVIYTTGSQATMDERNRQIAEIGASLIKHW"
    )
    variants = tmp_path / "blat.csv"
    if head is not None:
        variants.write_bytes(head)
    else:  # the same dialect, written here
        write_variants(variants, ["H24C", "H24E", "P25A"], {"2500": ["-0.4", "-0.3", ""]}, bom=True, index=True)
    assert variants.read_bytes().startswith(b"\xef\xbb\xbf")
    result = score(
        carp_folder, variants, tmp_path / "out.csv", sequence=wildtype, offset=24, score_column="2500", progress=False
    )
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "" and rows[0][1] == "mutant" and rows[0][-1] == "masked_marginal"
    assert len(rows) == len(result.scores) + 1
    expected = hand_masked_marginal(carp_folder, wildtype, rows[1][1], 24)
    assert math.isclose(result.scores[0], expected, abs_tol=ATOL)
    assert result.metrics_file == tmp_path / "out.spearman.json"


def test_spearman_leaves_out_and_counts_missing_targets(conv_folder, tmp_path) -> None:
    mutants = ["K2A", "K2D", "Q9R", "Q9E", "T3C", "A4G"]
    targets = ["1.5", "", "NaN", "0.2", "-1", "3"]
    variants = write_variants(tmp_path / "v.csv", mutants, {"fitness": targets})
    result = score(
        conv_folder, variants, tmp_path / "out.csv", sequence=WILDTYPE, score_column="fitness", progress=False
    )
    assert (result.spearman_rows, result.missing_targets) == (4, 2)
    from protconv.metrics import spearman

    keep = [0, 3, 4, 5]
    expected = spearman(np.array([result.scores[i] for i in keep]), np.array([float(targets[i]) for i in keep]))
    assert math.isclose(result.spearman, expected)
    saved = json.loads((tmp_path / "out.spearman.json").read_text())
    assert saved["spearman"] == pytest.approx(expected) and saved["rows"] == 4 and saved["missing_targets"] == 2
    bad = write_variants(tmp_path / "bad.csv", ["K2A", "K2D"], {"fitness": ["1", "high"]})
    with pytest.raises(InferenceInputError, match=r"bad.csv:3: score column 'fitness' holds 'high'"):
        score(conv_folder, bad, tmp_path / "out2.csv", sequence=WILDTYPE, score_column="fitness", progress=False)


@pytest.mark.parametrize(
    ("mutant", "message"),
    [
        ("H2A", r"v.csv:3: mutant 'H2A': the wild type has 'K' at position 2, not 'H'"),
        ("K2", r"v.csv:3: mutant 'K2': 'K2' is not a substitution"),
        ("K2A:", r"v.csv:3: mutant 'K2A:': '' is not a substitution"),
        ("2A", "is not a substitution"),
        ("M0A", r"position 0 is outside the wild type \(positions 1..83"),
        ("Q84A", "position 84 is outside"),
        ("K2K", "K2K is synonymous"),
        ("K2A:K2D", "position 2 is mutated twice"),
        ("K2B:M1Z", None),  # extended letters are tokens: accepted
        ("", "empty mutant"),
        ("K2@", "is not a substitution"),
    ],
)
def test_bad_mutants_name_the_csv_line(conv_folder, tmp_path, mutant, message, monkeypatch) -> None:
    variants = write_variants(tmp_path / "v.csv", ["K2A", mutant], {"x": ["1", "2"]})
    output = tmp_path / "out.csv"
    if message is None:
        score(conv_folder, variants, output, sequence=WILDTYPE, progress=False)
        return
    common_module = importlib.import_module("protconv.inference.common")
    monkeypatch.setattr(common_module, "load_model", lambda *a, **k: pytest.fail("model loaded before validation"))
    with pytest.raises(InferenceInputError, match=message):
        score(conv_folder, variants, output, sequence=WILDTYPE, progress=False)
    assert not output.exists()


def test_parse_mutant_offsets_and_wild_type_rows() -> None:
    mutations = parse_mutant("K25A:M24W", WILDTYPE, 24, "x")
    assert [(m.wildtype, m.position, m.index, m.mutant) for m in mutations] == [("K", 25, 1, "A"), ("M", 24, 0, "W")]
    assert parse_mutant("_wt", WILDTYPE, 1, "x") == parse_mutant("WT", WILDTYPE, 1, "x") == ()


def test_table_problems(conv_folder, tmp_path) -> None:
    variants = write_variants(tmp_path / "v.csv", ["K2A"], {"masked_marginal": ["1"]})
    with pytest.raises(InferenceInputError, match="already has a column 'masked_marginal'"):
        score(conv_folder, variants, tmp_path / "out.csv", sequence=WILDTYPE, progress=False)
    with pytest.raises(InferenceInputError, match=r"no column 'variant'"):
        score(conv_folder, variants, tmp_path / "out.csv", sequence=WILDTYPE, mutant_column="variant", progress=False)
    with pytest.raises(InferenceInputError, match="would overwrite the input"):
        score(conv_folder, variants, variants, sequence=WILDTYPE, output_column="s", progress=False)
    with pytest.raises(InferenceInputError, match="exactly one"):
        score(conv_folder, variants, tmp_path / "out.csv", progress=False)
    with pytest.raises(InferenceInputError, match="method must be one of"):
        score(conv_folder, variants, tmp_path / "out.csv", sequence=WILDTYPE, method="esm", progress=False)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("mutant,x\nK2A,1\nK2D,1,2\n")
    with pytest.raises(InferenceInputError, match=r"ragged.csv:3: 3 fields, but the header has 2"):
        score(conv_folder, ragged, tmp_path / "out.csv", sequence=WILDTYPE, progress=False)
    header_only = tmp_path / "header.csv"
    header_only.write_text("mutant\n")
    with pytest.raises(InferenceInputError, match="no data rows"):
        score(conv_folder, header_only, tmp_path / "out.csv", sequence=WILDTYPE, progress=False)
    assert not (tmp_path / "out.csv").exists()


def test_a_semicolon_table_scores_as_finetune_reads_it(conv_folder, tmp_path) -> None:
    """One dialect for every command (data/tables.py): a spreadsheet's ``;`` export, which finetune reads, is
    scored too, and the output keeps the input's delimiter."""
    comma = score(
        conv_folder,
        write_variants(tmp_path / "a.csv", MUTANTS),
        tmp_path / "a_out.csv",
        sequence=WILDTYPE,
        progress=False,
    )
    semicolon = tmp_path / "b.csv"
    semicolon.write_text("mutant;note\n" + "".join(f"{m};x\n" for m in MUTANTS))
    result = score(conv_folder, semicolon, tmp_path / "b_out.csv", sequence=WILDTYPE, progress=False)
    assert result.scores == comma.scores
    assert (tmp_path / "b_out.csv").read_text().splitlines()[0] == "mutant;note;masked_marginal"
