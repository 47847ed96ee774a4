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
from protconv.modeling.modeling_conv import DilatedConv1d

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
        hooks.append(layer.dilated_conv.register_forward_hook(lambda *args: None))
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


# --- module names, old checkpoints ------------------------------------------------------------------------------


def test_only_the_backbone_is_named_conv(tiny_conv_config) -> None:
    """peft matches ``target_modules`` by name suffix: ``conv`` must not also name every block's convolution."""
    model = ConvForMaskedLM(tiny_conv_config)
    assert [name for name, _ in model.named_modules() if name.rsplit(".", 1)[-1] == "conv"] == ["conv"]
    convolutions = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv1d)]
    assert convolutions == [f"conv.layers.{i}.dilated_conv" for i in range(tiny_conv_config.num_hidden_layers)]


def test_dilated_conv_takes_its_dilation_from_same_padding() -> None:
    """A copy built from (in, out, kernel_size, stride, padding), as peft builds LoRA factors, keeps the dilation."""
    conv = DilatedConv1d(8, 8, 5, dilation=4)
    assert (conv.dilation, conv.padding) == ((4,), (8,))
    copy = DilatedConv1d(8, 2, conv.kernel_size, conv.stride, conv.padding, bias=False)
    assert (copy.dilation, copy.padding) == ((4,), (8,))
    assert DilatedConv1d(2, 8, (1,), (1,)).dilation == (1,)  # a 1x1 factor
    x = torch.randn(2, 8, 11)
    torch.testing.assert_close(conv(x), F.conv1d(x, conv.weight, conv.bias, padding=8, dilation=4))
    with pytest.raises(ValueError, match="is not a 'same' convolution"):
        DilatedConv1d(8, 8, 5, padding=3)
    with pytest.raises(ValueError, match="is not a 'same' convolution"):
        DilatedConv1d(8, 8, 5, padding=4, dilation=4)


def _old_key(key: str) -> str:
    return key.replace(".dilated_conv.", ".conv.")


def test_saved_folders_use_the_current_key_names(tiny_conv_config, tmp_path) -> None:
    """Saved weights carry the in-memory names, so that Trainer's resume (a plain ``load_state_dict`` of the
    file) restores every weight; the old names are only read."""
    from safetensors.torch import load_file

    model = ConvForMaskedLM(tiny_conv_config)
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert set(saved) == set(model.state_dict()) and "conv.layers.0.dilated_conv.weight" in saved


def test_plain_load_state_dict_reads_the_old_names(tiny_conv_config) -> None:
    """A state dict from before the rename (a Trainer checkpoint of an older version, say) loads strictly."""
    model, other = ConvForMaskedLM(tiny_conv_config), ConvForMaskedLM(tiny_conv_config)
    other.load_state_dict({_old_key(key): tensor for key, tensor in model.state_dict().items()}, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True))
    encoder = protconv.ConvModel(tiny_conv_config)
    encoder.load_state_dict({_old_key(key): tensor for key, tensor in model.conv.state_dict().items()}, strict=True)
    assert torch.equal(encoder.layers[2].dilated_conv.weight, model.conv.layers[2].dilated_conv.weight)


def test_folder_with_the_old_key_names_loads_identically(tiny_conv_config, tokenizer, tmp_path) -> None:
    """A folder whose weights name the block convolution ``conv`` (protconv before the rename, converted CARP
    folders) loads every weight, with no missing or unexpected key, here and through remote code without
    protconv."""
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoModelForMaskedLM

    from tests.helpers import python_without_protconv

    model = ConvForMaskedLM(tiny_conv_config).eval()
    model.save_pretrained(tmp_path / "old")  # config and code; the weights are written by hand below
    old_state = {_old_key(key): tensor.contiguous() for key, tensor in model.state_dict().items()}
    assert "conv.layers.1.conv.weight" in old_state
    save_file(old_state, tmp_path / "old" / "model.safetensors", metadata={"format": "pt"})
    batch = tokenizer(["MKTAYIAKQR", "MKT"], padding=True, return_tensors="pt")
    for auto, prefix in ((AutoModelForMaskedLM, ""), (AutoModel, "conv.")):
        loaded, info = auto.from_pretrained(tmp_path / "old", output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        for key, tensor in loaded.state_dict().items():
            assert torch.equal(tensor, old_state[_old_key(prefix + key)]), key
    with torch.no_grad():
        assert torch.equal(
            AutoModelForMaskedLM.from_pretrained(tmp_path / "old")(**batch).logits, model(**batch).logits
        )

    script = f"""
    import torch, transformers
    from safetensors.torch import load_file
    try:
        import protconv
    except ImportError:
        pass
    else:
        raise SystemExit("protconv is importable: the test would prove nothing")
    folder = {str(tmp_path / "old")!r}
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(
        folder, trust_remote_code=True, output_loading_info=True
    )
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    saved = load_file(folder + "/model.safetensors")
    state = model.state_dict()
    assert set(saved) == {{key.replace(".dilated_conv.", ".conv.") for key in state}}
    assert all(torch.equal(tensor, saved[key.replace(".dilated_conv.", ".conv.")]) for key, tensor in state.items())
    print("REMOTE-OK")
    """
    result = python_without_protconv(script, tmp_path)
    assert result.returncode == 0 and "REMOTE-OK" in result.stdout, result.stdout[-2000:] + result.stderr[-4000:]


def test_output_attentions_is_refused(tiny_conv_config, tokenizer) -> None:
    """A convolution has no attention weights to return: asking for them is an error, not an empty field."""
    batch = tokenizer(["MKTAYIAK"], return_tensors="pt")
    for model in (protconv.ConvModel(tiny_conv_config), ConvForSequenceClassification(tiny_conv_config)):
        with pytest.raises(ValueError, match="output_attentions=True is not supported: Conv models have no attention"):
            model(**batch, output_attentions=True)
    model = ConvForMaskedLM(tiny_conv_config)
    model.config.output_attentions = True  # the config's default applies when the argument is not given
    with pytest.raises(ValueError, match="Conv models have no attention"):
        model(**batch)
