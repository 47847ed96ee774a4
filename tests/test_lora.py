"""LoRA with plain peft: ``LoraConfig`` without ``target_modules`` adapts the default targets of every family,
the dilated convolution included, and trains, saves and merges like any transformers model."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers import BertConfig

import protconv
from protconv.lora import default_lora_targets, register_peft_defaults
from protconv.modeling import MODEL_FAMILIES

EXPECTED_TARGETS = {
    "Conv": ["proj_in", "dilated_conv", "proj_out"],
    "Performer": ["attention.qkv", "attention.out_proj", "mlp_in", "mlp_out"],
}
#: peft's task type for each Auto class (masked LM has none: the plain ``PeftModel``).
TASK_TYPES = {
    "AutoModelForMaskedLM": None,
    "AutoModelForSequenceClassification": TaskType.SEQ_CLS,
    "AutoModelForTokenClassification": TaskType.TOKEN_CLS,
}
CASES = [
    pytest.param(config_class, auto, id=f"{config_class.family}-{auto.removeprefix('AutoModelFor')}")
    for config_class in MODEL_FAMILIES
    for auto in TASK_TYPES
]


def _model(request: pytest.FixtureRequest, config_class: type, auto: str) -> torch.nn.Module:
    tiny = request.getfixturevalue(f"tiny_{config_class.family.lower()}_config")
    config = config_class(**{**tiny.to_diff_dict(), "num_labels": 3, "classifier_dropout": 0.0})
    return MODEL_FAMILIES[config_class][auto](config).eval()


def _inputs(tokenizer, auto: str) -> dict[str, torch.Tensor]:
    batch = dict(tokenizer(["MKTAYIAKQRQISFVKSHFSRQ", "MKTAYIA", "ACDEFGHIKLMNPQRSTVWY"], padding=True,
                           return_tensors="pt"))  # fmt: skip
    real = batch["attention_mask"].bool()
    if auto == "AutoModelForSequenceClassification":
        return {**batch, "labels": torch.tensor([0, 2, 1])}
    labels = batch["input_ids"] % 3 if auto == "AutoModelForTokenClassification" else batch["input_ids"]
    return {**batch, "labels": labels.masked_fill(~real, -100)}


def test_default_targets_per_family_and_peft_registration(tiny_conv_config, tiny_performer_config) -> None:
    for config in (tiny_conv_config, tiny_performer_config):
        expected = EXPECTED_TARGETS[config.family]
        assert default_lora_targets(config) == expected
        assert default_lora_targets(MODEL_FAMILIES[type(config)]["AutoModel"](config)) == expected
        assert TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[config.model_type] == expected
    assert register_peft_defaults() is True  # idempotent
    with pytest.raises(ValueError, match="model_type 'bert' is not a protconv family"):
        default_lora_targets(BertConfig())


@pytest.mark.parametrize(("config_class", "auto"), CASES)
def test_plain_peft_adapts_the_default_targets(config_class, auto, request, tokenizer) -> None:
    """No target_modules: the default targets of every block are adapted, nothing else; the adapted model starts
    equal to the base (B = 0); a training step changes the adapters and the trained head only; the merged model
    computes what the adapted one does."""
    model = _model(request, config_class, auto)
    inputs = _inputs(tokenizer, auto)
    with torch.no_grad():
        base_logits = model(**inputs).logits
    frozen = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    peft_model = get_peft_model(model, LoraConfig(task_type=TASK_TYPES[auto], r=4, lora_alpha=8))

    adapted = sorted(name.removeprefix("base_model.model.").removesuffix(".lora_A") for name, _ in
                     peft_model.named_modules() if name.endswith(".lora_A"))  # fmt: skip
    layers = model.config.num_hidden_layers
    prefix = model.base_model_prefix
    assert adapted == sorted(
        f"{prefix}.layers.{i}.{t}" for i in range(layers) for t in EXPECTED_TARGETS[config_class.family]
    )
    with torch.no_grad():
        assert torch.equal(peft_model(**inputs).logits, base_logits)

    peft_model.train()
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # after the first step B != 0, so the second also moves A
        optimizer.zero_grad()
        peft_model(**inputs).loss.backward()
        optimizer.step()
    peft_model.eval()
    changed = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert all(".lora_" in name or ".modules_to_save." in name for name in changed), sorted(changed)
    assert any(".lora_A." in name for name in changed) and any(".lora_B." in name for name in changed)
    for name, tensor in peft_model.get_base_model().named_parameters():  # (buffers: the redraw schedule counts)
        if ".lora_" not in name and ".modules_to_save." not in name and ".original_module." not in name:
            assert torch.equal(tensor, frozen[name.replace(".base_layer.", ".")]), f"{name} changed"
    with torch.no_grad():
        adapted_logits = peft_model(**inputs).logits
        assert not torch.allclose(adapted_logits, base_logits)
        merged = peft_model.merge_and_unload()
        assert type(merged) is type(model) and not any(".lora_" in name for name in merged.state_dict())
        torch.testing.assert_close(merged(**inputs).logits, adapted_logits, rtol=1e-5, atol=1e-5)


def test_conv_lora_is_a_dilated_low_rank_convolution(tiny_conv_config, tokenizer, tmp_path) -> None:
    """The LoRA factors of each dilated convolution convolve with its dilation: the update is exactly a
    convolution with weight ``scaling * B A`` at that dilation. Adapters save and load with the new names."""
    model = protconv.ConvForMaskedLM(tiny_conv_config).eval()
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=2, target_modules=["dilated_conv"]))
    dilations = tiny_conv_config.dilations
    assert max(dilations) > 1
    torch.manual_seed(3)
    for index, block in enumerate(model.conv.layers):
        wrapped = block.dilated_conv
        lora_a, lora_b = wrapped.lora_A["default"], wrapped.lora_B["default"]
        assert (lora_a.dilation, lora_a.padding) == (wrapped.base_layer.dilation, wrapped.base_layer.padding)
        assert lora_a.dilation == (dilations[index],) and lora_b.kernel_size == (1,)
        torch.nn.init.normal_(lora_b.weight)
        x = torch.randn(2, tiny_conv_config.intermediate_size, 19)
        update = torch.einsum("or,rik->oik", lora_b.weight[:, :, 0], lora_a.weight)
        expected = wrapped.base_layer(x) + torch.nn.functional.conv1d(
            x, update, padding=wrapped.base_layer.padding, dilation=dilations[index]
        )
        with torch.no_grad():
            torch.testing.assert_close(wrapped(x), expected, rtol=1e-5, atol=1e-5)
    inputs = _inputs(tokenizer, "AutoModelForMaskedLM")
    with torch.no_grad():
        expected_logits = peft_model(**inputs).logits
    peft_model.save_pretrained(tmp_path)
    reloaded = PeftModel.from_pretrained(protconv.ConvForMaskedLM(tiny_conv_config).eval(), tmp_path)
    reloaded.get_base_model().load_state_dict(
        {k: v for k, v in model.state_dict().items() if ".lora_" not in k}, strict=False
    )  # the same frozen base weights (a fresh model drew its own)
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits, expected_logits)


def test_targeting_conv_no_longer_reaches_the_block_convolutions(tiny_conv_config) -> None:
    """``conv`` names the backbone only; peft refuses to wrap a whole model rather than silently adapting it."""
    with pytest.raises(ValueError, match="Target module ConvModel"):
        get_peft_model(protconv.ConvForMaskedLM(tiny_conv_config), LoraConfig(target_modules=["conv"]))
