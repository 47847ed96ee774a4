"""Alignment profiles as per-residue training targets: sequence weights, Neff, pseudocounts, targets.

The pipeline, all vectorised over the whole alignment (no Python loop over members x columns):

1. ``encode_rows``: the match-column rows become an (n, L) uint8 array: 0-19 the standard amino acids in
   ``STANDARD_AMINO_ACIDS`` order (the profile column order everywhere), 20 a gap, 21 a non-standard letter.
2. ``henikoff_weights``: position-based sequence weights (Henikoff & Henikoff 1994), so that a family with 500
   near-identical sequences and 5 diverse ones is not a profile of the 500.
3. ``effective_number``: Neff as HH-suite defines it (exp of the column entropy, averaged over columns).
4. ``compute_profile``: weighted counts scaled to Neff, plus a background pseudocount or a Dirichlet-mixture
   prior (the Blocks9 mixture HMMER3 uses).
5. ``sequence_targets``: every member becomes an example whose residues carry their column's distribution.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..modeling.vocabulary import EXTENDED_AMINO_ACIDS, NUM_AMINO_ACIDS, STANDARD_AMINO_ACIDS
from .choices import check_choice, choice_error
from .msa import Alignment

GAP_CODE = 20
OTHER_CODE = 21
_N_CODES = 22
_ROW_CHUNK = 2048  # members per chunk in the gather/bincount passes: bounds temporary memory to ~chunk x L x 8 B

_CODE_OF = np.full(256, 255, dtype=np.uint8)
for _index, _letter in enumerate(STANDARD_AMINO_ACIDS):
    _CODE_OF[ord(_letter)] = _index
for _letter in EXTENDED_AMINO_ACIDS:
    _CODE_OF[ord(_letter)] = OTHER_CODE
_CODE_OF[ord("-")] = GAP_CODE

# BLOSUM62 background frequencies (Henikoff & Henikoff 1992, PNAS 89:10915), the background HH-suite uses and
# HMMER/Easel ships as esl_composition_BL62(); values as printed there, in STANDARD_AMINO_ACIDS (A..Y) order.
BACKGROUND: np.ndarray = np.array(
    [0.074, 0.025, 0.054, 0.054, 0.047, 0.074, 0.026, 0.068, 0.058, 0.099,
     0.025, 0.045, 0.039, 0.034, 0.052, 0.057, 0.051, 0.073, 0.013, 0.032],
    dtype=np.float64,
)  # fmt: skip
BACKGROUND.flags.writeable = False

# Default background pseudocount weight. With counts scaled to Neff, (c + a*bg) / (Neff + a) mixes in the
# background with tau = 1 / (1 + Neff / a): HH-suite's no-context admixture (mode 2, a = 1, c = 1) with its
# default b = 1.5 (hhblits -pc_hhm_nocontxt_b). HH-suite mixes in substitution-matrix pseudocounts, not the
# background, so only the strength is shared.
DEFAULT_PSEUDOCOUNT_WEIGHT = 1.5

Prior = Literal["background", "dirichlet"]
InsertPolicy = Literal["background", "mask"]


# ---------------------------------------------------------------- encoding and weights


def encode_rows(alignment: Alignment) -> np.ndarray:
    """The match-column rows as an (n, L) uint8 array: 0-19 amino acids, 20 gap, 21 B/Z/X/J/O/U."""
    n, length = len(alignment), alignment.n_columns
    if n == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    codes = _CODE_OF[np.frombuffer("".join(alignment.rows).encode("ascii"), dtype=np.uint8)]
    if codes.size != n * length:
        raise ValueError(f"{alignment.source}: alignment rows differ in length")
    if (codes == 255).any():
        bad = chr(np.frombuffer("".join(alignment.rows).encode("ascii"), dtype=np.uint8)[np.argmax(codes == 255)])
        raise ValueError(f"{alignment.source}: row character {bad!r} is not an upper-case amino acid or '-'")
    return codes.reshape(n, length)


def _codes(alignment: Alignment | np.ndarray) -> np.ndarray:
    return encode_rows(alignment) if isinstance(alignment, Alignment) else np.asarray(alignment, dtype=np.uint8)


def _column_sums(codes: np.ndarray, per_member: np.ndarray | None = None) -> np.ndarray:
    """(L, 22) table: per column and code, the number of members (or the sum of ``per_member`` values)."""
    n, length = codes.shape
    offsets = np.arange(length, dtype=np.int64) * _N_CODES
    total = np.zeros(length * _N_CODES, dtype=np.float64)
    for start in range(0, n, _ROW_CHUNK):
        block = codes[start : start + _ROW_CHUNK]
        index = (block.astype(np.int64) + offsets).ravel()
        values = None if per_member is None else np.repeat(per_member[start : start + _ROW_CHUNK], length)
        total += np.bincount(index, weights=values, minlength=length * _N_CODES)
    return total.reshape(length, _N_CODES)


def henikoff_weights(alignment: Alignment | np.ndarray) -> np.ndarray:
    """Position-based sequence weights (Henikoff & Henikoff 1994, J Mol Biol 243:574), summing to 1.

    In each match column with ``r`` distinct standard residues, a member whose residue is shared by ``s``
    members earns ``1 / (r * s)``; a member's weight is the sum over columns, normalised over members. Gaps and
    the non-standard letters B/Z/X/J/O/U earn nothing and do not count towards ``r`` or ``s`` (as in HMMER's
    Easel, which counts canonical residues only); insert residues are not part of the rows and play no role.
    Unlike Easel's variant the raw weight is not divided by the member's length, so short fragments weigh less:
    the classic definition. A member without any standard residue gets weight 0; if no member has one, the
    weights are uniform. Accepts an Alignment or codes from :func:`encode_rows`.
    """
    codes = _codes(alignment)
    n, length = codes.shape
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    counts = _column_sums(codes)
    present = counts[:, :NUM_AMINO_ACIDS] > 0
    distinct = present.sum(axis=1, keepdims=True)
    share = np.zeros((length, _N_CODES), dtype=np.float64)
    np.divide(1.0, distinct * counts[:, :NUM_AMINO_ACIDS], out=share[:, :NUM_AMINO_ACIDS], where=present)
    flat = share.ravel()
    offsets = np.arange(length, dtype=np.int64) * _N_CODES
    raw = np.empty(n, dtype=np.float64)
    for start in range(0, n, _ROW_CHUNK):
        block = codes[start : start + _ROW_CHUNK]
        raw[start : start + len(block)] = flat[block.astype(np.int64) + offsets].sum(axis=1)
    total = raw.sum()
    return raw / total if total > 0 else np.full(n, 1.0 / n)


def _normalised_weights(codes: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return henikoff_weights(codes)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (codes.shape[0],) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be {codes.shape[0]} non-negative numbers with a positive sum")
    return weights / weights.sum()


def weighted_frequencies(alignment: Alignment | np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(L, 20) weighted amino-acid frequencies per match column, gaps and B/Z/X/J/O/U excluded.

    Rows of columns without any standard residue are all zero. ``weights`` default to Henikoff weights.
    """
    codes = _codes(alignment)
    mass = _column_sums(codes, _normalised_weights(codes, weights))[:, :NUM_AMINO_ACIDS]
    totals = mass.sum(axis=1, keepdims=True)
    return np.divide(mass, totals, out=np.zeros_like(mass), where=totals > 0)


def _column_neff(frequencies: np.ndarray) -> np.ndarray:
    """exp(Shannon entropy in nats) of each row; 0 for an all-zero row (a column without residues)."""
    logs = np.log(frequencies, out=np.zeros_like(frequencies), where=frequencies > 0)
    neff = np.exp(-(frequencies * logs).sum(axis=1))
    return np.where(frequencies.sum(axis=1) > 0, neff, 0.0)


def effective_number(alignment: Alignment | np.ndarray, weights: np.ndarray | None = None) -> float:
    """Neff as HH-suite reports it (the NEFF line of an .hhm): exp(column entropy), averaged over columns.

    Per match column, the entropy of the weighted amino-acid frequencies (Henikoff weights by default, gaps
    excluded) is exponentiated, giving 1 for a conserved column and at most 20; the mean over the columns that
    hold any standard residue is Neff (0 for an alignment without residues). It measures diversity, not depth:
    identical sequences give 1 however many there are. Unlike "clusters at 80% identity" it needs no O(n^2)
    pairwise comparison, so a 10,000-member alignment costs milliseconds. HH-suite computes each column's
    frequencies with weights from the sub-alignment covering it, so its values differ somewhat.
    """
    codes = _codes(alignment)
    neff = _column_neff(weighted_frequencies(codes, weights))
    covered = neff > 0
    return float(neff[covered].mean()) if covered.any() else 0.0


# ---------------------------------------------------------------- priors


def _lgamma(values: np.ndarray) -> np.ndarray:
    """Elementwise log-gamma (numpy has none and scipy is not a dependency; exact via math.lgamma)."""
    return np.frompyfunc(math.lgamma, 1, 1)(values).astype(np.float64)


@dataclass(frozen=True)
class DirichletMixture:
    """A mixture of Dirichlet densities used as a prior on a column's distribution (Sjölander et al. 1996).

    ``mixture_coefficients`` (Q,) are the component probabilities, ``alphas`` (Q, K) the Dirichlet parameters.
    """

    mixture_coefficients: np.ndarray
    alphas: np.ndarray

    def posterior_mean(self, counts: np.ndarray) -> np.ndarray:
        """Posterior mean distribution for each row of ``counts`` (..., K), a real-valued count vector.

        P(q | c) is proportional to coef_q * B(c + alpha_q) / B(alpha_q) with B the multivariate Beta
        function (the multinomial coefficient cancels), and the estimate is
        sum_q P(q | c) (c + alpha_q) / (|c| + |alpha_q|): the mean posterior estimator of Sjölander et al.
        """
        counts = np.asarray(counts, dtype=np.float64)
        shape = counts.shape
        flat = counts.reshape(-1, shape[-1])[:, None, :]  # (N, 1, K)
        alphas = np.asarray(self.alphas, dtype=np.float64)[None]  # (1, Q, K)
        alpha_sum = alphas.sum(axis=-1)  # (1, Q)
        total = flat.sum(axis=-1)  # (N, 1)
        log_likelihood = (
            _lgamma(alpha_sum) - _lgamma(alpha_sum + total) + (_lgamma(flat + alphas) - _lgamma(alphas)).sum(axis=-1)
        )
        log_posterior = np.log(np.asarray(self.mixture_coefficients, dtype=np.float64))[None] + log_likelihood
        log_posterior -= log_posterior.max(axis=1, keepdims=True)
        posterior = np.exp(log_posterior)
        posterior /= posterior.sum(axis=1, keepdims=True)
        means = (flat + alphas) / (total + alpha_sum)[..., None]  # (N, Q, K)
        return np.einsum("nq,nqk->nk", posterior, means).reshape(shape)


def _read_mixture(name: str) -> DirichletMixture:
    """A mixture shipped as JSON beside this module (data, kept out of the code); its alphabet must be ours."""
    values = json.loads((Path(__file__).parent / name).read_text(encoding="utf-8"))
    if values["alphabet"] != STANDARD_AMINO_ACIDS:
        raise ValueError(f"{name}: columns in {values['alphabet']!r}, expected {STANDARD_AMINO_ACIDS!r}")
    return DirichletMixture(np.array(values["mixture_coefficients"]), np.array(values["alphas"]))


#: The nine-component Blocks9 match-emission mixture of Sjölander et al. (1996), CABIOS 12:327, as distributed in
#: HMMER3 (src/p7_prior.c, p7_prior_CreateAmino; BSD licence), in A..Y order: HMMER's default match prior.
BLOCKS9 = _read_mixture("blocks9_prior.json")


# ---------------------------------------------------------------- profile


@dataclass
class Profile:
    """A match-column profile.

    ``probabilities`` (L, 20) float64, rows sum to 1, columns in STANDARD_AMINO_ACIDS order. ``neff`` is the
    alignment's Neff (:func:`effective_number`). ``counts`` (L, 20) are the weighted counts the prior was applied
    to (weights summing to Neff, so a column's total is Neff times the weight fraction of members with a
    standard residue there). ``column_neff`` (L,) is exp(entropy) of each column's frequencies, 0 where the
    column holds no standard residue.
    """

    probabilities: np.ndarray
    neff: float
    counts: np.ndarray
    column_neff: np.ndarray

    @property
    def n_columns(self) -> int:
        return int(self.probabilities.shape[0])


def _checked_distribution(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (NUM_AMINO_ACIDS,) or (values < 0).any() or not np.isclose(values.sum(), 1.0, atol=1e-6):
        raise ValueError(f"{what} must be {NUM_AMINO_ACIDS} non-negative frequencies summing to 1")
    return values / values.sum()


def compute_profile(
    alignment: Alignment,
    pseudocount_weight: float = DEFAULT_PSEUDOCOUNT_WEIGHT,
    prior: Prior = "background",
    background: np.ndarray = BACKGROUND,
    weights: np.ndarray | None = None,
    mixture: DirichletMixture = BLOCKS9,
) -> Profile:
    """The alignment's match-column profile with pseudocounts.

    Counts: per column, the Henikoff weights (or ``weights``) of the members holding each standard residue,
    scaled so that all weights sum to Neff; gaps and B/Z/X/J/O/U are excluded from the 20-way distribution
    (an X says nothing about which residue belongs there). Scaling to Neff rather than to the number of members
    makes the prior's influence depend on diversity, not on depth: 1,000 copies of one sequence are as
    uncertain as one. Then, per column with counts ``c`` (total ``C``):

    - ``prior="background"``: ``p = (c + a * background) / (C + a)`` with ``a = pseudocount_weight``;
      equivalently the background is mixed in with ``tau = a / (C + a)``, HH-suite's Neff-dependent admixture
      form. ``a = 0`` gives plain weighted frequencies (a column without residues then gets the background).
    - ``prior="dirichlet"``: the posterior mean under ``mixture`` (default: HMMER3's Blocks9 mixture);
      ``pseudocount_weight`` is not used, the mixture's own alphas set its strength.
    """
    if pseudocount_weight < 0:
        raise ValueError(f"pseudocount_weight must be >= 0, got {pseudocount_weight}")
    background = _checked_distribution(background, "background")
    codes = encode_rows(alignment)
    if codes.size == 0:
        raise ValueError(f"{alignment.source}: cannot compute a profile of an empty alignment")
    member_weights = _normalised_weights(codes, weights)
    mass = _column_sums(codes, member_weights)[:, :NUM_AMINO_ACIDS]
    totals = mass.sum(axis=1, keepdims=True)
    frequencies = np.divide(mass, totals, out=np.zeros_like(mass), where=totals > 0)
    column_neff = _column_neff(frequencies)
    covered = column_neff > 0
    neff = float(column_neff[covered].mean()) if covered.any() else 0.0
    counts = neff * mass
    if prior == "background":
        numerator = counts + pseudocount_weight * background
        denominator = counts.sum(axis=1, keepdims=True) + pseudocount_weight
        probabilities = np.divide(
            numerator, denominator, out=np.tile(background, (len(counts), 1)), where=denominator > 0
        )
    elif prior == "dirichlet":
        probabilities = mixture.posterior_mean(counts)
    else:
        raise choice_error("prior", prior, Prior)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return Profile(probabilities=probabilities, neff=neff, counts=counts, column_neff=column_neff)


# ---------------------------------------------------------------- per-sequence targets


@dataclass
class ProfileExample:
    """One training sequence with a 20-way target distribution per residue.

    ``targets`` is (len(sequence), 20) float32 in STANDARD_AMINO_ACIDS order; an all-zero row means "no target
    at this residue" (to be left out of the loss).
    """

    name: str
    sequence: str
    targets: np.ndarray


def target_table(
    probabilities: np.ndarray, inserts: InsertPolicy = "background", background: np.ndarray = BACKGROUND
) -> np.ndarray:
    """(columns + 1, 20) float32 lookup table of per-residue targets: the profile rows, then the row of insert
    residues (index -1): ``background`` or all zeros (no target) for ``inserts="mask"``."""
    check_choice("inserts", inserts, InsertPolicy)
    table = np.zeros((len(probabilities) + 1, NUM_AMINO_ACIDS), dtype=np.float32)
    table[:-1] = probabilities
    if inserts == "background":
        table[-1] = _checked_distribution(background, "background")
    return table


def sequence_targets(
    alignment: Alignment,
    profile: Profile,
    inserts: InsertPolicy = "background",
    background: np.ndarray = BACKGROUND,
) -> list[ProfileExample]:
    """Every member of ``alignment`` as a training example: its full ungapped sequence, each residue carrying
    the profile row of its match column.

    Insert residues (match column -1; lower case in A3M) belong to no column: ``inserts="background"`` gives
    them ``background`` (the insert-state emission of a profile HMM), ``inserts="mask"`` an all-zero row so the
    loss skips them. Members without residues are left out. Memory is n x length x 80 bytes, so for very deep
    alignments keep the profile and ``alignment.match_columns`` and build targets per batch instead.
    """
    if profile.n_columns != alignment.n_columns:
        raise ValueError(
            f"{alignment.source}: profile has {profile.n_columns} columns, the alignment {alignment.n_columns}"
        )
    table = target_table(profile.probabilities, inserts, background)
    examples = []
    for name, sequence, columns in zip(alignment.names, alignment.sequences, alignment.match_columns, strict=True):
        if sequence:
            examples.append(ProfileExample(name, sequence, table[columns]))  # column -1 → the last row
    return examples
