"""FAVOR+ attention math: exact identities in float64, approximation quality, padding, determinism."""

from __future__ import annotations

import pytest
import torch

from protconv.modeling.favor import (
    causal_linear_attention,
    favor_attention,
    hashed_seed,
    linear_attention,
    orthogonal_random_features,
    relu_kernel_features,
    softmax_attention,
    softmax_kernel_features,
)


def _qkv(batch: int, length: int, dim: int, scale: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 2, length, dim)
    q = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    k = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    v = torch.randn(shape, generator=generator, dtype=torch.float64)
    return q, k, v


def _relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx - exact).norm() / exact.norm())


def test_projection_rows_are_orthogonal_within_blocks_and_deterministic() -> None:
    projection = orthogonal_random_features(256, 64, seed=3).double()
    assert projection.shape == (256, 64)
    directions = projection / projection.norm(dim=1, keepdim=True)
    for block in directions.split(64):
        torch.testing.assert_close(block @ block.T, torch.eye(64, dtype=torch.float64), atol=1e-6, rtol=0)
    # chi(64) norms: mean close to sqrt(64) = 8, but not constant.
    norms = projection.norm(dim=1)
    assert 7.5 < float(norms.mean()) < 8.5 and float(norms.std()) > 0.3
    assert torch.equal(orthogonal_random_features(256, 64, seed=3), orthogonal_random_features(256, 64, seed=3))
    assert not torch.equal(orthogonal_random_features(256, 64, seed=3), orthogonal_random_features(256, 64, seed=4))
    fixed = orthogonal_random_features(100, 64, seed=3, scaling="sqrt").double()
    torch.testing.assert_close(fixed.norm(dim=1), torch.full((100,), 8.0, dtype=torch.float64))


def test_hashed_seed_is_stable_and_separates_keys() -> None:
    # A fixed value: the same (seed, layer, draw) must give the same projection in every process and release.
    assert hashed_seed(0, 1, 2) == hashed_seed(0, 1, 2) == 435750099837276607
    assert len({hashed_seed(0, layer, draw) for layer in range(8) for draw in range(8)}) == 64


@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_linear_attention_equals_explicit_normalised_attention(kernel: str) -> None:
    q, k, v = _qkv(2, 50, 16, scale=0.5)
    projection = orthogonal_random_features(40, 16, seed=1).double()
    key_mask = torch.ones(2, 50, dtype=torch.bool)
    key_mask[1, 31:] = False
    if kernel == "softmax":
        q_features = softmax_kernel_features(q, projection, is_query=True)
        k_features = softmax_kernel_features(k, projection, is_query=False, key_mask=key_mask)
    else:
        q_features, k_features = relu_kernel_features(q, projection), relu_kernel_features(k, projection)
    weights = (q_features @ k_features.transpose(-1, -2)) * key_mask[:, None, None, :]
    explicit = (weights @ v) / weights.sum(dim=-1, keepdim=True)
    out = favor_attention(q, k, v, projection, key_mask, kernel=kernel)
    torch.testing.assert_close(out, explicit, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(("length", "chunk_size"), [(50, 1), (50, 7), (300, 128), (64, 64), (40, 512)])
def test_causal_prefix_sums_equal_explicit_lower_triangular_attention(length: int, chunk_size: int) -> None:
    q, k, v = _qkv(2, length, 16, scale=0.5)
    projection = orthogonal_random_features(24, 16, seed=2).double()
    q_features = softmax_kernel_features(q, projection, is_query=True)
    k_features = softmax_kernel_features(k, projection, is_query=False)
    weights = (q_features @ k_features.transpose(-1, -2)).tril()
    explicit = (weights @ v) / weights.sum(dim=-1, keepdim=True)
    out = causal_linear_attention(q_features, k_features, v, chunk_size=chunk_size)
    torch.testing.assert_close(out, explicit, atol=1e-12, rtol=1e-12)
    # The non-causal path computes the full (untriangulated) attention.
    full = q_features @ k_features.transpose(-1, -2)
    torch.testing.assert_close(linear_attention(q_features, k_features, v), (full @ v) / full.sum(-1, keepdim=True))


def test_favor_approximates_softmax_attention_and_improves_with_features() -> None:
    """q, k ~ N(0, 0.25²), d = 64, L = 1024 (DESIGN.md): error ≈ 0.05 at 256 features, halving per 4x."""
    q, k, v = _qkv(1, 1024, 64, scale=0.25)
    exact = softmax_attention(q, k, v)

    def mean_error(nb_features: int) -> float:
        errors = [
            _relative_error(favor_attention(q, k, v, orthogonal_random_features(nb_features, 64, seed=s)), exact)
            for s in range(3)
        ]
        return sum(errors) / len(errors)

    error_64, error_256, error_1024 = mean_error(64), mean_error(256), mean_error(1024)
    assert error_256 < 0.10
    assert error_64 > error_256 > error_1024
    # Monte-Carlo rate 1/sqrt(m): a 4x increase halves the error (0.5); allow sampling noise.
    assert 0.35 < error_1024 / error_256 < 0.70
    assert 0.35 < error_256 / error_64 < 0.70


def test_causal_favor_approximates_causal_softmax() -> None:
    q, k, v = _qkv(1, 256, 64, scale=0.25)
    exact = softmax_attention(q, k, v, causal=True)
    out = favor_attention(q, k, v, orthogonal_random_features(256, 64, seed=0), causal=True)
    assert _relative_error(out, exact) < 0.10


def _zero_only_values(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, projection: torch.Tensor, key_mask):
    """performer-pytorch's masking, reimplemented: padded V rows are zeroed, their key features are kept, and
    the key stabiliser is taken over all positions, padding included."""
    v = v * key_mask[:, None, :, None]
    q_features = softmax_kernel_features(q, projection, is_query=True)
    k_features = softmax_kernel_features(k, projection, is_query=False)
    return linear_attention(q_features, k_features, v)


def test_padded_keys_leave_outputs_unchanged_but_zeroing_only_values_does_not() -> None:
    q, k, v = _qkv(1, 40, 16)
    projection = orthogonal_random_features(64, 16, seed=0).double()
    alone = favor_attention(q, k, v, projection)
    # The same sequence followed by 40 padded positions (50% padding) whose states look like real ones, as
    # the <pad> embeddings passed through a network do.
    padding = _qkv(1, 40, 16, seed=1)
    q_pad, k_pad, v_pad = (torch.cat([t, other], dim=2) for t, other in zip((q, k, v), padding, strict=True))
    key_mask = torch.cat([torch.ones(1, 40), torch.zeros(1, 40)], dim=1).bool()

    padded = favor_attention(q_pad, k_pad, v_pad, projection, key_mask)[:, :, :40]
    torch.testing.assert_close(padded, alone, atol=1e-12, rtol=1e-12)

    zero_v = _zero_only_values(q_pad, k_pad, v_pad, projection, key_mask)[:, :, :40]
    assert _relative_error(zero_v, alone) > 0.3
    # Padded keys stay in its normaliser, so outputs shrink towards zero (about half at 50% padding).
    assert float(zero_v.norm() / alone.norm()) < 0.8

    exact_alone = softmax_attention(q, k, v)
    exact_padded = softmax_attention(q_pad, k_pad, v_pad, key_mask)[:, :, :40]
    torch.testing.assert_close(exact_padded, exact_alone, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_causal_padding_and_masking_of_exact_attention(causal: bool) -> None:
    q, k, v = _qkv(1, 30, 16)
    projection = orthogonal_random_features(32, 16, seed=0).double()
    q_pad, k_pad, v_pad = (torch.cat([t, torch.randn_like(t)], dim=2) for t in (q, k, v))
    key_mask = torch.cat([torch.ones(1, 30), torch.zeros(1, 30)], dim=1).bool()
    for attend in (
        lambda q_, k_, v_, m_: favor_attention(q_, k_, v_, projection, m_, causal=causal),
        lambda q_, k_, v_, m_: softmax_attention(q_, k_, v_, m_, causal=causal),
    ):
        alone = attend(q, k, v, None)
        padded = attend(q_pad, k_pad, v_pad, key_mask)[:, :, :30]
        torch.testing.assert_close(padded, alone, atol=1e-12, rtol=1e-12)


def test_half_precision_inputs_are_computed_in_float32() -> None:
    q, k, v = (t.float() for t in _qkv(1, 128, 64, scale=1.0))
    projection = orthogonal_random_features(256, 64, seed=0)
    reference = favor_attention(q, k, v, projection)
    half = favor_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), projection.bfloat16())
    assert half.dtype == torch.bfloat16
    assert torch.isfinite(half).all()
    assert _relative_error(half.float(), reference) < 0.05


def test_unknown_kernel_is_rejected() -> None:
    q, k, v = _qkv(1, 4, 8)
    with pytest.raises(ValueError, match="kernel must be"):
        favor_attention(q, k, v, orthogonal_random_features(8, 8, seed=0), kernel="cosine")
