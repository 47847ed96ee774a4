"""HMMER3 .hmm and HH-suite .hhm readers: values decoded by hand from the raw numbers in the files."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from protconv.data.msa import read_a3m
from protconv.data.profile_files import (
    ProfileFormatError,
    profile_file_examples,
    read_hhm_profile,
    read_hhm_profiles,
    read_hmmer_profile,
    read_hmmer_profiles,
)
from protconv.modeling.vocabulary import STANDARD_AMINO_ACIDS
from tests.helpers import MSA

HMM = MSA / "toy.hmm"
HHM = MSA / "hhsuite_query.hhm"


def index(letter: str) -> int:
    return STANDARD_AMINO_ACIDS.index(letter)


# ---------------------------------------------------------------- HMMER3


def test_hmmer_two_models_raw_values() -> None:
    first, second = read_hmmer_profiles(HMM, normalize=False)
    assert (first.name, second.name) == ("toy4", "toy2")
    assert first.probabilities.shape == (4, 20) and second.probabilities.shape == (2, 20)
    assert first.neff == 1.5
    # node 1: A 0.47804 -> exp(-0.47804) = 0.62000; the other 19: 3.91202 -> 0.02000
    assert first.probabilities[0, index("A")] == pytest.approx(math.exp(-0.47804))
    assert first.probabilities[0, index("A")] == pytest.approx(0.62, abs=1e-5)
    assert first.probabilities[0, index("Y")] == pytest.approx(0.02, abs=1e-6)
    # node 2: C 0.00000 -> 1, every other field '*' -> 0
    assert first.probabilities[1, index("C")] == 1.0 and first.probabilities[1].sum() == 1.0
    # node 4: W, Y 0.91629 -> 0.4, F 1.60944 -> 0.2
    assert first.probabilities[3, index("W")] == pytest.approx(0.4, abs=1e-5)
    assert first.probabilities[3, index("F")] == pytest.approx(0.2, abs=1e-5)
    # model 2: D 0.35667 -> 0.7, E 1.20397 -> 0.3; R 0.28768 -> 0.75, K 1.38629 -> 0.25
    assert second.probabilities[0, index("D")] == pytest.approx(0.7, abs=1e-5)
    assert second.probabilities[1, index("R")] == pytest.approx(0.75, abs=1e-5)
    np.testing.assert_allclose(first.probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_hmmer_consensus_and_normalisation() -> None:
    first, second = read_hmmer_profiles(HMM)
    # CONS yes: the file's consensus letters (upper-cased), even where the argmax is a tie (node 3 'g')
    assert first.sequence == "ACGW"
    # CONS no: the argmax residue of each state
    assert second.sequence == "DR"
    np.testing.assert_allclose(first.probabilities.sum(axis=1), 1.0, atol=1e-12)


def test_hmmer_single_model_reader(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 models"):
        read_hmmer_profile(HMM)
    text = HMM.read_text()
    single = tmp_path / "one.hmm"
    single.write_text(text[: text.index("//") + 3])
    record = read_hmmer_profile(single)
    assert record.name == "toy4" and record.sequence == "ACGW"


def test_hmmer_malformed(tmp_path: Path) -> None:
    text = HMM.read_text()
    lines = text.splitlines(keepends=True)
    truncated = tmp_path / "cut.hmm"
    truncated.write_text("".join(lines[:30]))
    with pytest.raises(ProfileFormatError, match="missing '//'") as error:
        read_hmmer_profiles(truncated)
    assert str(error.value).startswith(f"{truncated}:30: ")
    dna = tmp_path / "dna.hmm"
    dna.write_text(text.replace("ALPH  amino", "ALPH  DNA", 1))
    with pytest.raises(ProfileFormatError, match="amino-acid") as error:
        read_hmmer_profiles(dna)
    assert str(error.value).startswith(f"{dna}:6: ")
    wrong_length = tmp_path / "leng.hmm"
    wrong_length.write_text(text.replace("LENG  4", "LENG  5", 1))
    with pytest.raises(ProfileFormatError, match="LENG is 5"):
        read_hmmer_profiles(wrong_length)


# ---------------------------------------------------------------- HH-suite


def test_hhm_against_its_alignment() -> None:
    record = read_hhm_profile(HHM)
    query = read_a3m(MSA / "hhsuite_query.a3m")
    assert record.name.startswith("sp|Q5VUD6|FA69B_HUMAN")
    assert record.probabilities.shape == (431, 20)  # LENG 431 match states
    assert record.sequence == query.sequences[0]  # hhmake -M first: the query's residues are the match states
    assert record.neff == 5.2
    np.testing.assert_allclose(record.probabilities.sum(axis=1), 1.0, atol=1e-12)


def test_hhm_raw_values_hand_decoded() -> None:
    raw = read_hhm_profile(HHM, normalize=False).probabilities
    # integer encoding -1000 log2(p) rounds p by at most 2^0.0005 - 1 = 0.035%: rows sum to 1 within ~0.1%
    np.testing.assert_allclose(raw.sum(axis=1), 1.0, atol=1e-3)
    # "M 1    2443 * * * * * 3455 * * * 1095 * 1962 * ...": A, H, M, P
    assert raw[0, index("A")] == pytest.approx(2**-2.443)  # 0.18390
    assert raw[0, index("H")] == pytest.approx(2**-3.455)  # 0.09119
    assert raw[0, index("M")] == pytest.approx(2**-1.095)  # 0.46814
    assert raw[0, index("P")] == pytest.approx(2**-1.962)  # 0.25667
    assert np.count_nonzero(raw[0]) == 4  # '*' = 0: .hhm files hold frequencies without pseudocounts
    # "S 431  * ... 87 4095 * ...": S and T
    assert raw[430, index("S")] == pytest.approx(2**-0.087)  # 0.94148
    assert raw[430, index("T")] == pytest.approx(2**-4.095)  # 0.05852


def test_hhm_several_models_gzip_and_examples(tmp_path: Path) -> None:
    text = HHM.read_text()
    double = tmp_path / "two.hhm.gz"
    with gzip.open(double, "wt") as handle:
        handle.write(text + text)
    records = read_hhm_profiles(double)
    assert len(records) == 2 and records[1].sequence == records[0].sequence
    with pytest.raises(ValueError, match="2 models"):
        read_hhm_profile(double)
    examples = profile_file_examples(double)
    assert len(examples) == 2
    assert examples[0].targets.shape == (431, 20) and examples[0].targets.dtype == np.float32
    hmm_examples = profile_file_examples(HMM)
    assert [example.sequence for example in hmm_examples] == ["ACGW", "DR"]


def test_hhm_truncated_and_unknown_format(tmp_path: Path) -> None:
    lines = HHM.read_text().splitlines(keepends=True)
    truncated = tmp_path / "cut.hhm"
    truncated.write_text("".join(lines[:100]))
    with pytest.raises(ProfileFormatError, match="missing '//'") as error:
        read_hhm_profiles(truncated)
    assert str(error.value).startswith(f"{truncated}:100: ")
    other = tmp_path / "x.hmm"
    other.write_text("HMMER2.0 [2.3.2]\nNAME x\n")
    with pytest.raises(ProfileFormatError, match="neither"):
        profile_file_examples(other)
