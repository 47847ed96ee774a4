"""What is specific to ConvModel and its heads: CARP's sizes and layout, long inputs, heads' losses, bad configs.

Padding invariance, hidden states, pooling, activation checkpointing, bad inputs, save/load and remote-code loading
are the contract of every family: tests/modeling/test_contract.py.
"""

from __future__ import annotations

import pytest
import torch
from sequence_models.convolutional import ByteNetLM
from torch.nn import functional as F

import protconv
from protconv import ConvConfig, ConvForMaskedLM, ConvForSequenceClassification, ConvForTokenClassification

PUBLISHED_PARAMETERS = {"carp-600k": 600e3, "carp-38m": 38e6, "carp-76m": 76e6, "carp-640m": 640e6}


@pytest.mark.parametrize("preset", sorted(PUBLISHED_PARAMETERS))
def test_presets_match_reference_and_published_sizes(preset: str) -> None:
    config = ConvConfig.from_preset(preset)
    with torch.device("meta"):
        ours = sum(p.numel() for p in ConvForMaskedLM(config).parameters())
        reference = ByteNetLM(
            30,
            8,
            config.hidden_size,
            config.num_hidden_layers,
            5,
            128,
            final_ln=True,
            activation="gelu",
            slim=config.intermediate_size < config.hidden_size,
        )
        theirs = sum(p.numel() for p in reference.parameters())
    # protconv's vocabulary has 3 more tokens than CARP's 30: one embedding row and one decoder row each.
    assert ours - theirs == 3 * (config.embedding_size + config.hidden_size + 1)
    assert abs(ours / PUBLISHED_PARAMETERS[preset] - 1) < 0.08


def test_dilations_follow_carp_schedule() -> None:
    assert ConvConfig(num_hidden_layers=10, max_dilation=8).dilations == [1, 2, 4, 8, 1, 2, 4, 8, 1, 2]


def test_mask_token_embedding_is_zero(tiny_conv_config, tokenizer) -> None:
    """CARP fixes the <mask> embedding at zero: a masked residue carries no input signal."""
    model = ConvForMaskedLM(tiny_conv_config).eval()
    assert torch.count_nonzero(model.conv.embeddings.word_embeddings.weight[tokenizer.mask_token_id]) == 0


def test_twenty_thousand_residues_forward() -> None:
    model = ConvForMaskedLM(ConvConfig.from_preset("carp-600k")).eval()
    input_ids = torch.randint(5, 25, (1, 20_000))
    with torch.inference_mode():
        logits = model(input_ids=input_ids).logits
    assert logits.shape == (1, 20_000, model.config.vocab_size) and torch.isfinite(logits).all()


def test_masked_lm_loss_only_on_labelled_positions(tiny_conv_config, tokenizer) -> None:
    model = ConvForMaskedLM(tiny_conv_config).eval()
    inputs = tokenizer("MKT<mask>YI<mask>K", return_tensors="pt")
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[0, 4], labels[0, 7] = 5, 7
    out = model(**inputs, labels=labels)
    expected = F.cross_entropy(out.logits[0, [4, 7]], torch.tensor([5, 7]))
    torch.testing.assert_close(out.loss, expected)


def test_sequence_classification_problem_types(tiny_conv_config, tokenizer) -> None:
    inputs = tokenizer(["MKTAYIAK", "MKT"], padding=True, return_tensors="pt")
    regression = ConvForSequenceClassification(ConvConfig(**{**tiny_conv_config.to_diff_dict(), "num_labels": 1}))
    out = regression(**inputs, labels=torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), torch.tensor([0.5, -1.0])))
    assert regression.config.problem_type == "regression"

    config = ConvConfig(**{**tiny_conv_config.to_diff_dict(), "num_labels": 3})
    single = ConvForSequenceClassification(config)
    out = single(**inputs, labels=torch.tensor([2, 0]))
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.tensor([2, 0])))

    multi = ConvForSequenceClassification(ConvConfig(**{**tiny_conv_config.to_diff_dict(), "num_labels": 3}))
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = multi(**inputs, labels=targets)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, targets))


def test_token_classification_ignores_minus_100(tiny_conv_config, tokenizer) -> None:
    model = ConvForTokenClassification(ConvConfig(**{**tiny_conv_config.to_diff_dict(), "num_labels": 3})).eval()
    inputs = tokenizer(["MKTAY", "MK"], padding=True, return_tensors="pt")
    labels = torch.tensor([[-100, 0, 1, 2, 1, 0, -100], [-100, 2, 2, -100, -100, -100, -100]])
    out = model(**inputs, labels=labels)
    keep = labels != -100
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))


def test_bad_config_raises_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown Conv preset"):
        ConvConfig.from_preset("carp-1b")
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ConvConfig(kernel_size=4)


def _unpacked_reference(model: protconv.ConvForMaskedLM) -> list:
    """No-op hooks on every block and convolution switch the bf16 CPU fast paths off (they never bypass hooks)."""
    hooks = []
    for layer in model.conv.layers:
        hooks.append(layer.register_forward_hook(lambda *args: None))
        hooks.append(layer.conv.register_forward_hook(lambda *args: None))
    return hooks


def test_bf16_cpu_fast_paths_match_the_plain_operations_at_real_positions(tokenizer, real_proteins) -> None:
    config = protconv.ConvConfig(hidden_size=32, intermediate_size=16, num_hidden_layers=8, max_dilation=128)
    model = protconv.ConvForMaskedLM(config).eval()
    batch = tokenizer([p[:40] for p in real_proteins[:3]] + [real_proteins[3][:300]], padding=True, return_tensors="pt")
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        fp32 = model(**batch).logits
        model.to(torch.bfloat16)
        embedded = model.conv.embeddings(batch["input_ids"])
        assert model.conv._packed_positions(embedded, real) is not None  # the fast path is really taken
        fast = model(**batch, output_hidden_states=True)
        hooks = _unpacked_reference(model)
        plain = model(**batch, output_hidden_states=True)
        for hook in hooks:
            hook.remove()
    for fast_state, plain_state in zip(fast.hidden_states, plain.hidden_states, strict=True):
        torch.testing.assert_close(fast_state[real].float(), plain_state[real].float(), rtol=0.03, atol=0.03)
    torch.testing.assert_close(fast.logits[real].float(), plain.logits[real].float(), rtol=0.03, atol=0.03)
    agreement = (fast.logits[real].argmax(-1) == fp32[real].argmax(-1)).float().mean()
    assert agreement >= 0.9, float(agreement)


def test_bf16_training_with_checkpointing_takes_the_channels_last_path(tokenizer, real_proteins) -> None:
    config = protconv.ConvConfig(hidden_size=32, intermediate_size=16, num_hidden_layers=4, max_dilation=4)
    model = protconv.ConvForMaskedLM(config).to(torch.bfloat16).train()
    batch = tokenizer([p[:60] for p in real_proteins[:3]], padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(~batch["attention_mask"].bool(), -100)
    model.zero_grad()
    model(**batch, labels=labels).loss.backward()
    direct = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.activation_checkpointing_enable()
    model(**batch, labels=labels).loss.backward()
    for before, after in zip(direct, (p.grad for p in model.parameters()), strict=True):
        assert torch.isfinite(after).all()
        torch.testing.assert_close(after, before)
