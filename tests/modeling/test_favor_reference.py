"""The faster FAVOR+ (constant folded into linear_attention, state as (V1ᵀK')ᵀ) equals the previous code."""

from __future__ import annotations

import math

import pytest
import torch

from protconv.modeling.favor import favor_attention, orthogonal_random_features


def _reference(q, k, v, projection, key_mask, kernel):  # the implementation before the speed-up, condensed
    dim, m = q.shape[-1], projection.shape[0]
    w = projection.to(q.dtype) * dim**-0.25
    if kernel == "relu":
        qf, kf = (torch.relu(x @ w.t()) + 1e-3 for x in (q, k))
    else:

        def features(x, is_query):
            logits = x @ w.t() - (x * x).sum(-1, keepdim=True) * (dim**-0.5 / 2)
            c = logits.amax(-1, keepdim=True)
            if not is_query:
                c = c.masked_fill(~key_mask[:, None, :, None], float("-inf")).amax(-2, keepdim=True)
            return torch.exp(logits - c) * m**-0.5 + 1e-6 * m**-0.5

        qf, kf = features(q, True), features(k, False)
    v1 = torch.cat([v, torch.ones_like(v[..., :1])], -1) * key_mask[:, None, :, None]
    out = qf @ (kf.transpose(-1, -2) @ v1)
    return out[..., :-1] / out[..., -1:]


@pytest.mark.parametrize("kernel", ["softmax", "relu"])
def test_favor_equals_the_previous_implementation(kernel: str) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 200, 16, generator=g) * 0.6 for _ in range(3))
    mask = torch.ones(2, 200, dtype=torch.bool)
    mask[1, 120:] = False
    projection = orthogonal_random_features(256, 16, seed=1)
    new = favor_attention(q, k, v, projection, mask, kernel=kernel)
    old = _reference(q, k, v, projection, mask, kernel)
    assert float((new - old).norm() / old.norm()) < 1e-6
    assert not math.isnan(float(new.sum()))
