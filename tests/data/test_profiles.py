"""Sequence weights, Neff, pseudocounts, Dirichlet mixtures and per-sequence targets on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protconv.data.msa import Alignment, read_a3m
from protconv.data.profiles import (
    BACKGROUND,
    BLOCKS9,
    DirichletMixture,
    compute_profile,
    effective_number,
    encode_rows,
    henikoff_weights,
    sequence_targets,
    weighted_frequencies,
)
from protconv.modeling.vocabulary import STANDARD_AMINO_ACIDS
from tests.helpers import MSA

A, C, D, E = (STANDARD_AMINO_ACIDS.index(letter) for letter in "ACDE")


def alignment(*rows: str) -> Alignment:
    """An alignment of match-column rows only (no insertions)."""
    sequences = [row.replace("-", "") for row in rows]
    columns = [np.array([i for i, char in enumerate(row) if char != "-"], dtype=np.int64) for row in rows]
    return Alignment("<test>", [f"s{i}" for i in range(len(rows))], list(rows), sequences, columns)


def test_background_is_blosum62() -> None:
    assert BACKGROUND.shape == (20,)
    assert BACKGROUND.sum() == pytest.approx(1.0)
    assert BACKGROUND[STANDARD_AMINO_ACIDS.index("L")] == 0.099  # the most frequent residue in BLOSUM62's set
    assert BACKGROUND[STANDARD_AMINO_ACIDS.index("W")] == 0.013


def test_encode_rows() -> None:
    codes = encode_rows(alignment("AC-X", "YBZ-"))
    assert codes.tolist() == [[0, 1, 20, 21], [19, 21, 21, 20]]


def test_henikoff_weights_hand_computed() -> None:
    # column 1: A A A  r=1, s=3: 1/3 each
    # column 2: A C C  r=2: s1 (A, s=1) 1/2; s2, s3 (C, s=2) 1/4
    # column 3: C C D  r=2: s1, s2 (C, s=2) 1/4; s3 (D, s=1) 1/2
    # column 4: - D D  the gap counts for nothing: r=1, s=2: s2, s3 1/2, s1 0
    # raw: s1 = 1/3+1/2+1/4 = 13/12, s2 = 1/3+1/4+1/4+1/2 = 16/12, s3 = 1/3+1/4+1/2+1/2 = 19/12; total 4
    weights = henikoff_weights(alignment("AAC-", "ACCD", "ACDD"))
    assert weights == pytest.approx([13 / 48, 16 / 48, 19 / 48])
    assert weights.sum() == pytest.approx(1.0)


def test_henikoff_weights_ignore_nonstandard_letters() -> None:
    # column 1: A A -> 1/2 each; column 2: X is ignored, C alone (r=1, s=1) -> 1. raw 1/2, 3/2
    assert henikoff_weights(alignment("AX", "AC")) == pytest.approx([0.25, 0.75])
    # a member without any standard residue gets weight 0; if nobody has one, weights are uniform
    assert henikoff_weights(alignment("A", "-")) == pytest.approx([1.0, 0.0])
    assert henikoff_weights(alignment("X-", "-B")) == pytest.approx([0.5, 0.5])


def test_effective_number_identical_and_fully_diverse() -> None:
    assert effective_number(alignment("ACDEF", "ACDEF", "ACDEF")) == pytest.approx(1.0)
    # a Latin square: every column holds all 20 residues once, every weight is equal: exp(ln 20) = 20
    latin = alignment(*(STANDARD_AMINO_ACIDS[i:] + STANDARD_AMINO_ACIDS[:i] for i in range(20)))
    assert henikoff_weights(latin) == pytest.approx(np.full(20, 1 / 20))
    assert effective_number(latin) == pytest.approx(20.0)


def test_effective_number_hand_computed() -> None:
    # weights 13/48, 16/48, 19/48 (test above); columns 1 and 4 are conserved (exp(0) = 1)
    # column 2: A 13/48, C 35/48; column 3: C 29/48, D 19/48
    def exp_entropy(*frequencies: float) -> float:
        return math.exp(-sum(f * math.log(f) for f in frequencies))

    expected = (1 + exp_entropy(13 / 48, 35 / 48) + exp_entropy(29 / 48, 19 / 48) + 1) / 4
    aligned = alignment("AAC-", "ACCD", "ACDD")
    assert effective_number(aligned) == pytest.approx(expected)
    assert compute_profile(aligned).neff == pytest.approx(expected)
    # explicit uniform weights: column 2 A 1/3 C 2/3, column 3 C 2/3 D 1/3
    uniform = (2 + 2 * exp_entropy(1 / 3, 2 / 3)) / 4
    assert effective_number(aligned, weights=np.ones(3)) == pytest.approx(uniform)


def test_background_pseudocounts_single_sequence() -> None:
    # one sequence: weight 1, Neff 1, counts are one-hot; p = (c + a*bg) / (1 + a)
    profile = compute_profile(alignment("AC"), pseudocount_weight=1.5)
    assert profile.neff == pytest.approx(1.0)
    assert profile.probabilities[0, A] == pytest.approx((1 + 1.5 * 0.074) / 2.5)
    assert profile.probabilities[0, C] == pytest.approx(1.5 * 0.025 / 2.5)
    assert profile.probabilities[1, C] == pytest.approx((1 + 1.5 * 0.025) / 2.5)
    # depth does not sharpen the profile: ten copies carry as little information as one
    ten = compute_profile(alignment(*["AC"] * 10), pseudocount_weight=1.5)
    np.testing.assert_allclose(ten.probabilities, profile.probabilities)


def test_background_pseudocounts_with_gaps() -> None:
    # weights: column 1 A A -> 1/2 each; column 2 C alone -> 1 for s1: raw 3/2, 1/2 -> 3/4, 1/4. Neff 1.
    # counts: column 1 A = 1; column 2 C = 3/4 (the gapped member's weight is missing, not a gap count)
    profile = compute_profile(alignment("AC", "A-"), pseudocount_weight=1.0)
    assert profile.counts[0, A] == pytest.approx(1.0) and profile.counts[1, C] == pytest.approx(0.75)
    assert profile.probabilities[0, A] == pytest.approx((1 + 0.074) / 2)
    assert profile.probabilities[1, C] == pytest.approx((0.75 + 0.025) / 1.75)
    assert profile.probabilities[1, D] == pytest.approx(0.054 / 1.75)


def test_gaps_and_nonstandard_letters_are_excluded() -> None:
    profile = compute_profile(alignment("AC", "A-", "AX", "AC"), pseudocount_weight=0.0)
    expected = np.zeros(20)
    expected[C] = 1.0
    np.testing.assert_allclose(profile.probabilities[1], expected)
    # a column with no standard residue at all falls back to the background when a = 0
    empty = compute_profile(alignment("A-", "AX"), pseudocount_weight=0.0)
    np.testing.assert_allclose(empty.probabilities[1], BACKGROUND)
    assert empty.column_neff.tolist() == [1.0, 0.0]


def test_weighted_frequencies_hand_computed() -> None:
    frequencies = weighted_frequencies(alignment("AAC-", "ACCD", "ACDD"))
    assert frequencies[1, A] == pytest.approx(13 / 48) and frequencies[1, C] == pytest.approx(35 / 48)
    assert frequencies[3, D] == pytest.approx(1.0)


def test_dirichlet_mixture_posterior_mean_hand_case() -> None:
    # K = 2, two components with equal coefficients, alpha1 = (1, 1), alpha2 = (1, 3), counts (1, 0):
    # P(c | 1) ~ B(2, 1) / B(1, 1) = 1/2; P(c | 2) ~ B(2, 3) / B(1, 3) = (1/12) / (1/3) = 1/4
    # posterior 2/3, 1/3; means (2, 1)/3 and (2, 3)/5 -> (4/9 + 2/15, 2/9 + 1/5) = (26/45, 19/45)
    mixture = DirichletMixture(np.array([0.5, 0.5]), np.array([[1.0, 1.0], [1.0, 3.0]]))
    assert mixture.posterior_mean(np.array([1.0, 0.0])) == pytest.approx([26 / 45, 19 / 45])
    # batched and with zero counts: the prior mean, 1/2 (1/2, 1/2) + 1/2 (1/4, 3/4)
    batch = mixture.posterior_mean(np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert batch[1] == pytest.approx([3 / 8, 5 / 8])


def test_single_component_dirichlet_equals_additive_pseudocounts() -> None:
    alphas = 2.0 * BACKGROUND
    mixture = DirichletMixture(np.array([1.0]), alphas[None])
    aligned = alignment("AC", "A-", "DC")
    dirichlet = compute_profile(aligned, prior="dirichlet", mixture=mixture)
    additive = compute_profile(aligned, prior="background", pseudocount_weight=2.0)
    np.testing.assert_allclose(dirichlet.probabilities, additive.probabilities)


def test_blocks9_prior() -> None:
    assert BLOCKS9.alphas.shape == (9, 20)
    assert BLOCKS9.mixture_coefficients.sum() == pytest.approx(1.0, abs=1e-5)
    profile = compute_profile(alignment("WW", "WF", "WY"), prior="dirichlet")
    np.testing.assert_allclose(profile.probabilities.sum(axis=1), 1.0)
    assert (profile.probabilities > 0).all()
    assert profile.probabilities[0].argmax() == STANDARD_AMINO_ACIDS.index("W")
    # the aromatic component pulls the mixed F/W/Y column towards aromatics rather than towards the background
    aromatic = [STANDARD_AMINO_ACIDS.index(letter) for letter in "FWY"]
    assert profile.probabilities[1, aromatic].sum() > 0.5


@pytest.mark.parametrize("prior", ["background", "dirichlet"])
def test_profile_rows_sum_to_one_on_real_alignment(prior: str) -> None:
    aligned = read_a3m(MSA / "UniRef50_E9K9Y4.a3m")
    profile = compute_profile(aligned, prior=prior)
    assert profile.probabilities.shape == (98, 20) and profile.probabilities.dtype == np.float64
    np.testing.assert_allclose(profile.probabilities.sum(axis=1), 1.0, atol=1e-12)
    assert (profile.probabilities > 0).all()
    assert 1.0 < profile.neff < 20.0


def test_profile_argument_checks() -> None:
    aligned = alignment("AC")
    with pytest.raises(ValueError, match="prior"):
        compute_profile(aligned, prior="uniform")
    with pytest.raises(ValueError, match="pseudocount_weight"):
        compute_profile(aligned, pseudocount_weight=-1.0)
    with pytest.raises(ValueError, match="background"):
        compute_profile(aligned, background=np.ones(20))
    with pytest.raises(ValueError, match="weights"):
        compute_profile(aligned, weights=np.ones(2))


def test_sequence_targets_on_real_a3m() -> None:
    aligned = read_a3m(MSA / "UniRef50_E9K9Y4.a3m")
    profile = compute_profile(aligned)
    examples = sequence_targets(aligned, profile)
    masked = sequence_targets(aligned, profile, inserts="mask")
    assert len(examples) == 17
    for example, masked_example, columns in zip(examples, masked, aligned.match_columns, strict=True):
        assert example.targets.shape == (len(example.sequence), 20) and example.targets.dtype == np.float32
        matched = columns >= 0
        np.testing.assert_allclose(example.targets[matched], profile.probabilities[columns[matched]], rtol=1e-6)
        np.testing.assert_allclose(example.targets[~matched], np.tile(BACKGROUND, ((~matched).sum(), 1)), rtol=1e-6)
        np.testing.assert_array_equal(masked_example.targets[matched], example.targets[matched])
        assert not masked_example.targets[~matched].any()
    # record 6 (G9ZNW5): residue 32 (T) is in match column 36, residues 33-40 (tnegaplq) are insertions
    example = examples[5]
    assert example.name == "tr|G9ZNW5|G9ZNW5_9LACO" and example.sequence[32:40] == "TNEGAPLQ"
    np.testing.assert_allclose(example.targets[31], profile.probabilities[36], rtol=1e-6)
    np.testing.assert_allclose(example.targets[32], BACKGROUND, rtol=1e-6)
    assert not masked[5].targets[32:40].any() and masked[5].targets[40].sum() == pytest.approx(1.0)


def test_sequence_targets_skip_empty_members_and_check_shape() -> None:
    aligned = alignment("AC", "--", "-C")
    profile = compute_profile(aligned)
    examples = sequence_targets(aligned, profile)
    assert [example.name for example in examples] == ["s0", "s2"]
    np.testing.assert_allclose(examples[1].targets[0], profile.probabilities[1], rtol=1e-6)
    with pytest.raises(ValueError, match="columns"):
        sequence_targets(alignment("ACD"), profile)
    with pytest.raises(ValueError, match="inserts"):
        sequence_targets(aligned, profile, inserts="drop")
