"""FAVOR+ attention (Choromanski et al. 2020, arXiv 2009.14794) and its exact-softmax counterpart.

Pure functions over tensors shaped ``(batch, heads, length, head_dim)``; the model file owns the parameters and
the random projection. Everything here is linear in the sequence length except ``softmax_attention``, which is
the exact reference the Performer is compared against on identical weights.

Two deliberate differences from ``performer-pytorch``:

* padded keys are removed from both the numerator ``K'ᵀV`` and the normaliser ``K'ᵀ1`` (their rows of
  ``[V, 1]`` are zeroed), and the key stabiliser is a maximum over real keys only, so a sequence's outputs do
  not depend on how much padding its batch carries;
* the feature maps are evaluated in at least float32, because ``exp`` of the random projections overflows half
  precision long before the attention itself is inaccurate.
"""

from __future__ import annotations

import contextlib
import hashlib
import math

import torch
from torch.nn import functional as F

#: Additive constant of the positive softmax features. It biases attention towards uniform, so it stays tiny
#: (Google's value); it also keeps the normaliser strictly positive.
SOFTMAX_KERNEL_EPSILON = 1e-6
#: Additive constant of the ReLU ("generalized") features: without it a query orthogonal to every key would
#: divide by zero.
RELU_KERNEL_EPSILON = 1e-3
#: Positions per block in causal attention: the blocks' exact lower-triangular part costs ``length * chunk``
#: and the carried prefix state ``length / chunk * features * head_dim``; 128 balances the two at 256 features.
CAUSAL_CHUNK_SIZE = 128


def hashed_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed from ``seed`` and ``keys`` that is stable across processes and platforms.

    Python's ``hash`` is salted per process, so it cannot make redraws reproducible; a cryptographic digest
    also keeps the streams of neighbouring (layer, draw) pairs unrelated.
    """
    text = ":".join(str(value) for value in (seed, *keys))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def orthogonal_random_features(nb_features: int, dim: int, seed: int, scaling: str = "chi") -> torch.Tensor:
    """Projection ``W`` of shape ``(nb_features, dim)``: blocks of ``dim`` exactly orthogonal rows.

    Orthogonal rows lower the variance of the softmax-kernel estimate compared with i.i.d. Gaussian rows (the
    "+" of FAVOR+). Row norms follow chi(dim) (``scaling="chi"``), the norms of Gaussian rows, which keeps the
    estimator unbiased, or are fixed to ``sqrt(dim)`` (``"sqrt"``). Drawn on the CPU in float64 from a private
    generator, so the result depends only on the arguments: it costs one ``dim x dim`` QR per block.
    """
    if scaling not in ("chi", "sqrt"):
        raise ValueError(f"scaling must be 'chi' or 'sqrt', got {scaling!r}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n_blocks = math.ceil(nb_features / dim)
    gaussian = torch.randn(n_blocks, dim, dim, generator=generator, dtype=torch.float64, device="cpu")
    q, r = torch.linalg.qr(gaussian)
    # Fixing the signs by diag(R) makes Q Haar-distributed rather than biased by the QR convention.
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    rows = q.transpose(-1, -2).reshape(n_blocks * dim, dim)[:nb_features]
    if scaling == "chi":
        norms = torch.randn(nb_features, dim, generator=generator, dtype=torch.float64, device="cpu").norm(dim=1)
    else:
        norms = torch.full((nb_features,), math.sqrt(dim), dtype=torch.float64)
    return (rows * norms.unsqueeze(1)).to(torch.float32)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs, the input's dtype otherwise (float64 stays float64 for exact tests)."""
    return torch.promote_types(dtype, torch.float32)


def _scaled_projection(projection: torch.Tensor, dtype: torch.dtype, dim: int) -> torch.Tensor:
    """``W d^-1/4``: scaling the (small) projection instead of every query and key saves a pass over them."""
    return projection.to(dtype) * dim**-0.25


def softmax_kernel_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    is_query: bool,
    key_mask: torch.Tensor | None = None,
    eps: float = SOFTMAX_KERNEL_EPSILON,
) -> torch.Tensor:
    """Positive random features with ``E[φ(q)·φ(k)] = exp(q·k / sqrt(d))`` (up to the stabiliser and ``eps``).

    ``φ(x)_i = m^-1/2 (exp(w_iᵀx' − ‖x'‖²/2 − c) + eps)`` with ``x' = d^-1/4 x``. The stabiliser ``c`` is the
    row maximum for queries and one maximum over all real keys (per batch row and head) for keys; both cancel
    in the normalisation, so they are detached from the graph. ``key_mask`` (``(batch, length)``, True at real
    keys) keeps padded keys out of the key maximum.

    The ``length x features`` tensor dominates FAVOR+'s cost, so it is touched as few times as possible: one
    matmul of ``[x, ‖x'‖²/2]`` with ``[W d^-1/4, −1]`` gives the exponent directly, and without autograd the
    shift, ``exp`` and ``+ eps`` run in place. ``eps=0`` skips the addition: ``favor_attention`` adds the
    constant inside ``linear_attention`` instead, on ``features x head_dim`` numbers rather than on this tensor.
    """
    dim, nb_features = x.shape[-1], projection.shape[0]
    half_square_norm = (x * x).sum(dim=-1, keepdim=True) * (dim**-0.5 / 2)
    weights = torch.cat([_scaled_projection(projection, x.dtype, dim), -x.new_ones(nb_features, 1)], dim=1)
    logits = torch.cat([x, half_square_norm], dim=-1) @ weights.t()
    row_max = logits.detach().amax(dim=-1, keepdim=True)
    if is_query:
        stabiliser = row_max
    else:
        if key_mask is not None:
            row_max = row_max.masked_fill(~key_mask[:, None, :, None], float("-inf"))
        stabiliser = row_max.amax(dim=-2, keepdim=True)
        # A row without any real key has a -inf maximum; its keys are removed later anyway.
        stabiliser = torch.where(torch.isfinite(stabiliser), stabiliser, torch.zeros_like(stabiliser))
    # m^-1/2 folded into the exponent: exp(a - c - log(m)/2) = m^-1/2 exp(a - c).
    shift, floor = stabiliser + 0.5 * math.log(nb_features), eps * nb_features**-0.5
    if logits.requires_grad:
        features = torch.exp(logits - shift)
        return features + floor if floor else features
    features = logits.sub_(shift).exp_()
    return features.add_(floor) if floor else features


def relu_kernel_features(x: torch.Tensor, projection: torch.Tensor, eps: float = RELU_KERNEL_EPSILON) -> torch.Tensor:
    """The "generalized" kernel ``φ(x) = ReLU(W x') + eps``: no exponentials, no stabiliser, no overflow.

    ``eps=0`` skips the addition (``favor_attention`` adds it inside ``linear_attention``)."""
    logits = x @ _scaled_projection(projection, x.dtype, x.shape[-1]).t()
    if logits.requires_grad:
        features = F.relu(logits)
        return features + eps if eps else features
    features = logits.relu_()
    return features.add_(eps) if eps else features


def _values_and_ones(v: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """``[v, 1]`` with the rows of padded keys zeroed.

    Keys enter linear attention only through ``K'ᵀ[V, 1]``, so a zero row removes a padded key from the
    numerator (``V`` columns) and from the normaliser (the ones column) at once, as zeroing its features would,
    at a quarter of the cost. Zeroing only ``V`` (performer-pytorch) leaves the key in the normaliser.
    """
    v1 = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)
    if key_mask is not None:
        v1 = v1 * key_mask[:, None, :, None].to(v1.dtype)
    return v1


def _normalise(numerator_and_normaliser: torch.Tensor) -> torch.Tensor:
    """Divide the numerator columns by the last (normaliser) column.

    The clamp only matters where every key is padded (a row of pure padding), which would otherwise be 0/0.
    """
    numerator, normaliser = numerator_and_normaliser[..., :-1], numerator_and_normaliser[..., -1:]
    return numerator / normaliser.clamp_min(torch.finfo(normaliser.dtype).tiny)


def linear_attention(
    q_features: torch.Tensor,
    k_features: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    floor: float = 0.0,
) -> torch.Tensor:
    """Non-causal ``D⁻¹ Q'(K'ᵀ V)`` with ``D = diag(Q'(K'ᵀ 1))``: time and memory linear in length.

    ``floor``: a constant that both feature maps carry on top of the features given, ``Q' = Q_f + floor``,
    ``K' = K_f + floor``. By distributivity it costs two sums over the small state instead of two passes over
    the ``length x features`` tensors: ``K'ᵀV₁ = K_fᵀV₁ + floor·1(1ᵀV₁)`` and ``Q'S = Q_f S + floor·1(1ᵀS)``.

    The state is computed as ``(V₁ᵀ K')ᵀ``: the same numbers as ``K'ᵀV₁``, but with the long length axis
    contiguous in both operands, which CPU BLAS runs about twice as fast (measured, benchmarks/performer_speed.py).
    """
    v1 = _values_and_ones(v, key_mask)
    state = v1.transpose(-1, -2) @ k_features  # (..., head_dim + 1, features)
    if floor:
        state = state + floor * v1.sum(dim=-2).unsqueeze(-1)
    out = q_features @ state.transpose(-1, -2)
    if floor:
        out = out + floor * state.sum(dim=-1).unsqueeze(-2)
    return _normalise(out)


def causal_linear_attention(
    q_features: torch.Tensor,
    k_features: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    chunk_size: int = CAUSAL_CHUNK_SIZE,
) -> torch.Tensor:
    """Causal linear attention by prefix sums, vectorised over blocks of ``chunk_size`` positions.

    A naive prefix sum of ``k_j v_jᵀ`` materialises ``length x features x head_dim`` numbers (8 GiB per head at
    32k tokens). Instead each block adds the exact lower-triangular attention within itself to the state of all
    earlier blocks, an exclusive ``cumsum`` over per-block ``K'ᵀV``: no Python loop, memory linear in length.
    """
    batch, heads, length, nb_features = q_features.shape
    v1 = _values_and_ones(v, key_mask)
    chunk = min(chunk_size, length)
    n_chunks = math.ceil(length / chunk)
    extra = n_chunks * chunk - length
    if extra:
        # Zero features at the padded tail contribute nothing, and their outputs are sliced off.
        q_features, k_features, v1 = (F.pad(t, (0, 0, 0, extra)) for t in (q_features, k_features, v1))
    qc = q_features.reshape(batch, heads, n_chunks, chunk, nb_features)
    kc = k_features.reshape(batch, heads, n_chunks, chunk, nb_features)
    vc = v1.reshape(batch, heads, n_chunks, chunk, v1.shape[-1])
    block_state = kc.transpose(-1, -2) @ vc
    earlier_state = F.pad(block_state[:, :, :-1], (0, 0, 0, 0, 1, 0)).cumsum(dim=2)
    within = (qc @ kc.transpose(-1, -2)).tril()
    out = qc @ earlier_state + within @ vc
    return _normalise(out.reshape(batch, heads, n_chunks * chunk, -1)[:, :, :length])


def _without_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast switched off on ``device``: under bf16/fp16 autocast the feature matmuls would otherwise run in
    half precision whatever their inputs' dtype, and ``exp`` of the projections overflows there."""
    if not torch.amp.is_autocast_available(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


def favor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    projection: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    causal: bool = False,
    kernel: str = "softmax",
    eps: float | None = None,
) -> torch.Tensor:
    """FAVOR+ attention of ``q, k, v`` ``(batch, heads, length, head_dim)``; ``key_mask`` ``(batch, length)``.

    Approximates ``softmax(q kᵀ / sqrt(d)) v`` (``kernel="softmax"``) or computes ReLU-kernel attention
    (``kernel="relu"``). Returns the input's dtype; the features and the attention are computed in at least
    float32, also under autocast. An all-True ``key_mask`` gives bit for bit the result of ``None``.
    """
    out_dtype = v.dtype
    dtype = _compute_dtype(q.dtype)
    with _without_autocast(q.device):
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        # Non-causal attention adds the features' constant inside linear_attention (cheaper, same numbers up to
        # round-off); the causal blocks multiply the features with each other, so there they carry it.
        q_features, k_features, floor = _feature_maps(q, k, projection, key_mask, kernel, eps, fold_floor=not causal)
        if causal:
            return causal_linear_attention(q_features, k_features, v, key_mask).to(out_dtype)
        return linear_attention(q_features, k_features, v, key_mask, floor=floor).to(out_dtype)


def _feature_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    projection: torch.Tensor,
    key_mask: torch.Tensor | None,
    kernel: str,
    eps: float | None,
    fold_floor: bool,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Query and key features of ``kernel`` and the constant left out of them (0 unless ``fold_floor``)."""
    if kernel == "softmax":
        eps = SOFTMAX_KERNEL_EPSILON if eps is None else eps
        floor, feature_eps = eps * projection.shape[0] ** -0.5, 0.0 if fold_floor else eps
        q_features = softmax_kernel_features(q, projection, is_query=True, eps=feature_eps)
        k_features = softmax_kernel_features(k, projection, is_query=False, key_mask=key_mask, eps=feature_eps)
    elif kernel == "relu":
        eps = RELU_KERNEL_EPSILON if eps is None else eps
        floor, feature_eps = eps, 0.0 if fold_floor else eps
        q_features = relu_kernel_features(q, projection, eps=feature_eps)
        k_features = relu_kernel_features(k, projection, eps=feature_eps)
    else:
        raise ValueError(f"kernel must be 'softmax' or 'relu', got {kernel!r}")
    return q_features, k_features, floor if fold_floor else 0.0


def _attention_mask(
    key_mask: torch.Tensor | None, causal: bool, length: int, device: torch.device
) -> torch.Tensor | None:
    """Boolean ``(batch or 1, 1, length, length)`` mask of the keys each query may see, or ``None`` for all."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    if causal:
        lower = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        mask = lower if mask is None else mask & lower
    return mask


def softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    """Exact ``softmax(q kᵀ / sqrt(d)) v`` through ``scaled_dot_product_attention`` (same shapes as FAVOR+).

    Pass ``key_mask=None`` when nothing is padded, so PyTorch can pick its fused (flash) kernel; deciding that
    here would cost a host synchronisation per layer (the model decides once per forward).
    """
    if causal and key_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=_attention_mask(key_mask, causal, q.shape[-2], q.device))


def softmax_attention_weights(
    q: torch.Tensor, k: torch.Tensor, key_mask: torch.Tensor | None = None, causal: bool = False
) -> torch.Tensor:
    """The ``(batch, heads, length, length)`` probabilities ``softmax(q kᵀ / sqrt(d))`` of ``softmax_attention``.

    Computed on their own (``output_attentions=True``) so that the attention output stays the fused kernel's,
    the same with or without them. A query that sees no key gets all-zero weights rather than NaN.
    """
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    mask = _attention_mask(key_mask, causal, q.shape[-2], q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)
