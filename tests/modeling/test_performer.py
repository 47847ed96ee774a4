"""What is specific to the Performer family: presets and config checks, attention variants (FAVOR+ kernels, causal,
exact softmax, positions), the random-feature schedule and its save/load, long context.

Padding invariance, hidden states, pooling, activation checkpointing, bad inputs, save/load and remote-code loading
are the contract of every family: tests/modeling/test_contract.py.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoModel, AutoModelForMaskedLM

import protconv
from protconv.modeling import favor, modeling_performer
from protconv.modeling.modeling_performer import draw_projection


def _batch(tokenizer, sequences: list[str]) -> dict[str, torch.Tensor]:
    return tokenizer(sequences, padding=True, return_tensors="pt")


def _projections(model: protconv.PerformerModel) -> list[torch.Tensor]:
    return [layer.attention.projection.clone() for layer in model.layers]


def _all_equal(first: list[torch.Tensor], second: list[torch.Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


# --- configuration and registration ---------------------------------------------------------------------------


def test_small_preset_is_the_size_of_carp_600k() -> None:
    performer = protconv.PerformerForMaskedLM(protconv.PerformerConfig.from_preset("performer-small"))
    carp = protconv.ConvForMaskedLM(protconv.ConvConfig.from_preset("carp-600k"))
    n_performer = sum(p.numel() for p in performer.parameters())
    n_carp = sum(p.numel() for p in carp.parameters())
    assert 0.8 < n_performer / n_carp < 1.25
    assert protconv.PerformerConfig.from_preset("performer-base", nb_features=128).nb_features == 128
    with pytest.raises(ValueError, match="unknown Performer preset"):
        protconv.PerformerConfig.from_preset("performer-huge")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attention": "linear"}, "attention must be one of"),
        ({"kernel": "cos"}, "kernel must be one of"),
        ({"position_embedding_type": "alibi"}, "position_embedding_type must be one of"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "not divisible"),
        ({"hidden_size": 30, "num_attention_heads": 2}, "even head dimension"),
        ({"feature_redraw_interval": -1}, "feature_redraw_interval"),
        ({"nb_features": 0}, "nb_features"),
    ],
)
def test_invalid_config_is_rejected(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        protconv.PerformerConfig(**overrides)


# --- forward passes and heads ---------------------------------------------------------------------------------


def test_regression_head(tiny_performer_config, tokenizer, real_proteins) -> None:
    batch = _batch(tokenizer, real_proteins[:3])
    regression = protconv.PerformerForSequenceClassification(
        tiny_performer_config.__class__(**{**tiny_performer_config.to_diff_dict(), "num_labels": 1})
    )
    out = regression(**batch, labels=torch.randn(3))
    assert out.logits.shape == (3, 1) and regression.config.problem_type == "regression"


#: The default configuration is held to padding invariance by the contract suite; these are the other variants.
PADDING_VARIANTS = {
    "favor-relu-kernel": {"kernel": "relu"},
    "favor-causal": {"causal": True},
    "exact-softmax": {"attention": "softmax"},
    "absolute-positions": {"position_embedding_type": "absolute"},
}


@pytest.mark.parametrize("variant", PADDING_VARIANTS)
def test_attention_variants_are_padding_invariant(variant, tiny_performer_config, tokenizer, real_proteins) -> None:
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), **PADDING_VARIANTS[variant]})
    model = protconv.PerformerModel(config).eval()
    sequences = [real_proteins[0][:60], real_proteins[1][:200], real_proteins[2][:25]]
    batch = _batch(tokenizer, sequences)
    with torch.no_grad():
        together = model(**batch)
        for row, sequence in enumerate(sequences):
            alone = model(**_batch(tokenizer, [sequence]))
            n = alone.last_hidden_state.shape[1]
            torch.testing.assert_close(together.last_hidden_state[row, :n], alone.last_hidden_state[0])
            torch.testing.assert_close(together.pooler_output[row], alone.pooler_output[0])


def test_zeroing_only_values_breaks_padding_invariance(
    monkeypatch, tiny_performer_config, tokenizer, real_proteins
) -> None:
    """performer-pytorch's masking (zero V, keep padded keys in the normaliser) inside the same model fails."""

    def zero_only_values(q, k, v, projection, key_mask=None, causal=False, kernel="softmax", eps=None):
        q_features = favor.softmax_kernel_features(q, projection, is_query=True)
        k_features = favor.softmax_kernel_features(k, projection, is_query=False)
        if key_mask is not None:
            v = v * key_mask[:, None, :, None]
        return favor.linear_attention(q_features, k_features, v)

    model = protconv.PerformerModel(tiny_performer_config).eval()
    short, long = real_proteins[0][:40], real_proteins[1][:120]
    monkeypatch.setattr(modeling_performer, "favor_attention", zero_only_values)
    with torch.no_grad():
        alone = model(**_batch(tokenizer, [short])).last_hidden_state[0]
        padded = model(**_batch(tokenizer, [short, long])).last_hidden_state[0, : alone.shape[0]]
    assert float((padded - alone).abs().max()) > 1e-2


@pytest.mark.parametrize("attention", ["favor", "softmax"])
def test_causal_model_does_not_look_ahead(attention: str, tiny_performer_config) -> None:
    """Changing later tokens leaves earlier outputs unchanged with ``causal=True`` and changes them without.

    FAVOR+'s key stabiliser is one maximum over all keys (as in Google's code); it cancels exactly except through
    the 1e-6 feature epsilon, hence the tolerance rather than bitwise equality."""
    prefix = torch.randint(5, 25, (1, 30))
    first = torch.cat([prefix, torch.randint(5, 25, (1, 20))], dim=1)
    second = torch.cat([prefix, torch.randint(5, 25, (1, 20))], dim=1)
    for causal in (True, False):
        config = protconv.PerformerConfig(
            **{**tiny_performer_config.to_diff_dict(), "causal": causal, "attention": attention}
        )
        model = protconv.PerformerModel(config).eval()
        with torch.no_grad():
            difference = (model(first).last_hidden_state - model(second).last_hidden_state)[:, :30].abs().max()
        if causal:
            assert float(difference) < 1e-5
        else:
            assert float(difference) > 1e-3


def test_softmax_switch_uses_the_same_weights(tiny_performer_config, tokenizer, real_proteins) -> None:
    """With many features FAVOR+ approaches the exact model that the switch selects; with the switch the
    outputs are exactly those of softmax attention on identical parameters."""
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), "nb_features": 4096})
    model = protconv.PerformerModel(config).eval()
    batch = _batch(tokenizer, [real_proteins[3][:150]])
    with torch.no_grad():
        approx = model(**batch).last_hidden_state
        model.config.attention = "softmax"
        exact = model(**batch).last_hidden_state
    assert not torch.equal(approx, exact)
    assert float((approx - exact).norm() / exact.norm()) < 0.02


def test_rotary_model_runs_past_max_position_embeddings(tiny_performer_config) -> None:
    model = protconv.PerformerModel(
        protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), "max_position_embeddings": 16})
    )
    out = model(torch.randint(5, 25, (1, 64)))
    assert out.last_hidden_state.shape == (1, 64, 32)


def test_absolute_positions_reject_longer_inputs(tiny_performer_config) -> None:
    absolute = protconv.PerformerForMaskedLM(
        protconv.PerformerConfig(
            **{
                **tiny_performer_config.to_diff_dict(),
                "position_embedding_type": "absolute",
                "max_position_embeddings": 16,
            }
        )
    )
    absolute(torch.randint(5, 25, (1, 16)))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=16"):
        absolute(torch.randint(5, 25, (1, 17)))


# --- random features: model state, eval, redraw schedule ------------------------------------------------------


def test_projection_never_changes_in_eval(tiny_performer_config, tokenizer, real_proteins) -> None:
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), "feature_redraw_interval": 1})
    model = protconv.PerformerForMaskedLM(config).eval()
    before = _projections(model.performer)
    batch = _batch(tokenizer, real_proteins[:2])
    first = model(**batch).logits
    for _ in range(5):
        assert torch.equal(model(**batch).logits, first)
    assert _all_equal(before, _projections(model.performer))
    assert int(model.performer.feature_redraw_step) == 0


def test_redraw_schedule_in_training_is_deterministic(tiny_performer_config, tokenizer, real_proteins) -> None:
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), "feature_redraw_interval": 3})
    batch = _batch(tokenizer, real_proteins[:2])

    def run(seed: int) -> list[list[torch.Tensor]]:
        torch.manual_seed(seed)  # different weights and dropout streams must not change the draws
        model = protconv.PerformerModel(config).train()
        history = [_projections(model)]
        for _ in range(7):
            model(**batch)
            history.append(_projections(model))
        assert int(model.feature_redraw_step) == 7
        return history

    history = run(0)
    changed_at = [step for step in range(1, 8) if not torch.equal(history[step][0], history[step - 1][0])]
    assert changed_at == [3, 6]
    for layer in range(config.num_hidden_layers):
        assert torch.equal(history[0][layer], draw_projection(config, layer, 0))
        assert torch.equal(history[3][layer], draw_projection(config, layer, 1))
        assert torch.equal(history[7][layer], draw_projection(config, layer, 2))
    assert not torch.equal(history[0][0], history[0][1])  # layers draw independently
    other_run = run(1)
    assert all(_all_equal(history[step], other_run[step]) for step in range(8))

    reseeded = protconv.PerformerConfig(**{**config.to_diff_dict(), "projection_seed": 1})
    assert not torch.equal(draw_projection(reseeded, 0, 0), history[0][0])
    never = protconv.PerformerModel(
        protconv.PerformerConfig(**{**config.to_diff_dict(), "feature_redraw_interval": 0})
    ).train()
    initial = _projections(never)
    for _ in range(4):
        never(**batch)
    assert _all_equal(initial, _projections(never))


def test_redraw_between_forwards_keeps_the_graph_valid(tiny_performer_config, tokenizer, real_proteins) -> None:
    """Two forwards then one backward (gradient accumulation by summing losses) across a redraw."""
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), "feature_redraw_interval": 1})
    model = protconv.PerformerForMaskedLM(config).train()
    batch = _batch(tokenizer, real_proteins[:2])
    loss = model(**batch).logits.mean() + model(**batch).logits.mean()
    loss.backward()
    assert int(model.performer.feature_redraw_step) == 2


# --- save / load ----------------------------------------------------------------------------------------------


def test_save_and_load_reproduce_outputs_and_schedule(tiny_performer_config, tokenizer, real_proteins, tmp_path):
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), "feature_redraw_interval": 2})
    model = protconv.PerformerForMaskedLM(config).train()
    batch = _batch(tokenizer, real_proteins[:3])
    for _ in range(5):  # two redraws: the saved projection is draw 2, not the one __init__ would make
        model(**batch)
    model.eval()
    expected = model(**batch).logits
    model.save_pretrained(tmp_path)

    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is protconv.PerformerForMaskedLM
    assert torch.equal(loaded(**batch).logits, expected)
    assert int(loaded.performer.feature_redraw_step) == 5
    for layer, (ours, theirs) in enumerate(
        zip(_projections(model.performer), _projections(loaded.performer), strict=True)
    ):
        assert torch.equal(ours, theirs) and torch.equal(theirs, draw_projection(config, layer, 2))
    encoder = AutoModel.from_pretrained(tmp_path)
    assert torch.equal(encoder.layers[1].attention.projection, model.performer.layers[1].attention.projection)


def test_missing_projection_is_drawn_from_the_seed(tiny_performer_config, tokenizer, real_proteins, tmp_path):
    from safetensors.torch import load_file, save_file

    model = protconv.PerformerForMaskedLM(tiny_performer_config).eval()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["performer.layers.0.attention.projection"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = protconv.PerformerForMaskedLM.from_pretrained(tmp_path).eval()
    batch = _batch(tokenizer, real_proteins[:2])
    assert torch.equal(loaded(**batch).logits, model(**batch).logits)


# --- long context ---------------------------------------------------------------------------------------------


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operation produces: an L x L attention matrix would dominate it."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.mark.parametrize("causal", [False, True])
def test_memory_grows_linearly_with_length(causal: bool, tiny_performer_config) -> None:
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), "causal": causal})
    model = protconv.PerformerModel(config).eval()
    largest = {}
    for length in (1024, 4096):
        recorder = _LargestTensor()
        with torch.no_grad(), recorder:
            model(torch.randint(5, 25, (1, length)))
        largest[length] = recorder.largest
    assert largest[4096] <= 4.2 * largest[1024]
    assert largest[4096] < 4096 * 4096 / 8  # far below one head's exact attention matrix


def test_forward_over_32k_tokens_with_the_small_preset(real_proteins, tokenizer) -> None:
    """Concatenated proteins separated by <eos> (as in the Performer protein paper), 32,768 tokens, on CPU."""
    model = protconv.PerformerForMaskedLM(protconv.PerformerConfig.from_preset("performer-small")).eval()
    ids: list[int] = []
    while len(ids) < 32_768:
        for protein in real_proteins:
            ids += tokenizer(protein, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = torch.tensor([ids[:32_768]])
    with torch.no_grad():
        logits = model(input_ids).logits
    assert logits.shape == (1, 32_768, model.config.vocab_size)
    assert torch.isfinite(logits).all()


# --- attention weights ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_mode_returns_the_attention_probabilities(causal, tiny_performer_config, tokenizer, real_proteins):
    """Exact mode, ``output_attentions=True``: per layer the ``(batch, heads, length, length)`` probabilities, over
    the real keys each query may see, from which the layer's output is ``out_proj(weights @ v)``; the outputs are
    those without them."""
    overrides = {"attention": "softmax", "causal": causal, "position_embedding_type": "absolute"}
    config = protconv.PerformerConfig(**{**tiny_performer_config.to_diff_dict(), **overrides})
    model = protconv.PerformerModel(config).eval()
    batch = _batch(tokenizer, [real_proteins[0][:30], real_proteins[1][:50]])
    (size, length), heads = batch["input_ids"].shape, config.num_attention_heads
    attention, captured = model.layers[0].attention, {}
    attention.qkv.register_forward_hook(lambda module, args, out: captured.update(qkv=out))
    attention.register_forward_hook(lambda module, args, out: captured.update(out=out[0]))
    with torch.no_grad():
        plain = model(**batch)
        out = model(**batch, output_attentions=True)
    assert plain.attentions is None and torch.equal(out.last_hidden_state, plain.last_hidden_state)
    assert len(out.attentions) == config.num_hidden_layers
    weights = out.attentions[0]
    assert weights.shape == (size, heads, length, length)
    padded_keys = ~batch["attention_mask"].bool()[:, None, None, :].expand_as(weights)
    assert not weights[padded_keys].any()
    torch.testing.assert_close(weights.sum(-1), torch.ones(size, heads, length))
    if causal:
        assert not weights.triu(1).any()
    v = captured["qkv"].view(size, length, 3, heads, -1)[:, :, 2].transpose(1, 2)
    with torch.no_grad():
        recomputed = attention.out_proj((weights @ v).transpose(1, 2).reshape(size, length, -1))
    torch.testing.assert_close(recomputed, captured["out"], rtol=1e-5, atol=1e-6)
    as_tuple = model(**batch, output_attentions=True, return_dict=False)
    assert all(torch.equal(a, b) for a, b in zip(as_tuple[-1], out.attentions, strict=True))


def test_favor_mode_refuses_output_attentions(tiny_performer_config, tokenizer) -> None:
    batch = _batch(tokenizer, ["MKTAYIAK"])
    for model in (protconv.PerformerModel(tiny_performer_config), protconv.PerformerForMaskedLM(tiny_performer_config)):
        with pytest.raises(ValueError, match=r"FAVOR\+ \(config.attention='favor'\) never forms"):
            model(**batch, output_attentions=True)
    model = protconv.PerformerForSequenceClassification(tiny_performer_config)
    model.config.output_attentions = True  # the config's default applies when the argument is not given
    with pytest.raises(ValueError, match=r"set model\.config\.attention = 'softmax'"):
        model(**batch)
    model.config.attention = "softmax"
    assert len(model(**batch).attentions) == tiny_performer_config.num_hidden_layers


# --- precision ------------------------------------------------------------------------------------------------


def test_projection_stays_float32_in_half_precision_models(tiny_performer_config, tmp_path) -> None:
    """The projection is part of the kernel: loading, building or casting in bf16/fp16 keeps it float32 and
    exact, and a cast model saves it unrounded."""
    model = protconv.PerformerForMaskedLM(tiny_performer_config)
    model.save_pretrained(tmp_path / "fp32")
    saved = _projections(model.performer)

    def assert_exact(performer: protconv.PerformerModel) -> None:
        assert all(p.dtype == torch.float32 for p in _projections(performer))
        assert _all_equal(_projections(performer), saved)

    for dtype in (torch.bfloat16, torch.float16):
        loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "fp32", dtype=dtype)
        assert loaded.performer.layers[0].attention.qkv.weight.dtype == dtype
        assert_exact(loaded.performer)
        built = AutoModelForMaskedLM.from_config(tiny_performer_config, dtype=dtype)
        assert built.performer.layers[0].attention.projection.dtype == torch.float32
    model.to(torch.bfloat16)
    assert model.performer.layers[0].mlp_in.weight.dtype == torch.bfloat16
    assert_exact(model.performer)
    model.half()
    assert_exact(model.performer)
    model.save_pretrained(tmp_path / "fp16")
    assert_exact(AutoModelForMaskedLM.from_pretrained(tmp_path / "fp16").performer)
    model.float()
    assert_exact(model.performer)
    model.double()  # float64 holds float32 values exactly: allowed
    assert all(torch.equal(p, q.double()) for p, q in zip(_projections(model.performer), saved, strict=True))


def test_favor_in_bf16_is_as_accurate_as_in_fp32(monkeypatch, tmp_path) -> None:
    """A bf16 model (loaded with ``dtype=torch.bfloat16``, or fp32 under bf16 autocast) approximates exact
    attention as well as the fp32 model: its FAVOR+ features are float32 (checked), so it differs from the fp32
    model's FAVOR+ output by no more than bf16 rounding moves exact attention.

    One attention layer, head dimension 64, 256 features, q and k entries of standard deviation ~0.25 (the regime
    of the design notes), 300 positions with padding. Measured: FAVOR+ vs exact 0.1458 in fp32 and in bf16;
    bf16 vs fp32 FAVOR+ 0.0043, bf16 vs fp32 exact 0.0045."""
    config = protconv.PerformerConfig(
        hidden_size=128, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, initializer_range=0.03
    )
    fp32 = protconv.PerformerModel(config).eval()
    fp32.save_pretrained(tmp_path)
    bf16 = protconv.PerformerModel.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    hidden = torch.randn(2, 300, 128, generator=torch.Generator().manual_seed(0))
    key_mask = torch.ones(2, 300, dtype=torch.bool)
    key_mask[1, 200:] = False
    feature_dtypes = []
    linear_attention = favor.linear_attention

    def recording(q_features, k_features, v, key_mask=None, floor=0.0):
        feature_dtypes.append((q_features.dtype, k_features.dtype))
        return linear_attention(q_features, k_features, v, key_mask, floor=floor)

    monkeypatch.setattr(favor, "linear_attention", recording)

    def attend(model: protconv.PerformerModel, attention: str) -> torch.Tensor:
        model.config.attention = attention
        layer = model.layers[0].attention
        with torch.no_grad():
            return layer(hidden.to(layer.qkv.weight.dtype), key_mask, None, None)[0].float()

    def error(approx: torch.Tensor, exact: torch.Tensor) -> float:
        return float((approx - exact)[key_mask].norm() / exact[key_mask].norm())

    exact32, favor32 = attend(fp32, "softmax"), attend(fp32, "favor")
    exact16, favor16 = attend(bf16, "softmax"), attend(bf16, "favor")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        exact_autocast, favor_autocast = attend(fp32, "softmax"), attend(fp32, "favor")
    assert feature_dtypes == [(torch.float32, torch.float32)] * 3
    approximation = error(favor32, exact32)
    assert 0.05 < approximation < 0.3, approximation  # FAVOR+ really approximates here
    assert abs(error(favor16, exact32) - approximation) < 0.02 * approximation
    assert error(favor16, favor32) < 1.5 * error(exact16, exact32)
    assert error(favor_autocast, favor32) < 1.5 * error(exact_autocast, exact32)
