"""Profile prediction: the KL loss, the multi-task weighting and the ``*ForPreTraining`` models of both families.

Their padding invariance, checkpointing, bad inputs, save/load and remote-code loading are checked with every other
Auto class by the contract suite (tests/modeling/test_contract.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining, AutoModelForSequenceClassification

import protconv
from protconv.modeling import ProteinPreTrainingOutput, profile_kl_loss

SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MSLLTEVETPIRNEWGCRCNDSSD", "MKTAYIAK"]
FAMILIES = ["conv", "performer"]


# --- fixtures and helpers -------------------------------------------------------------------------------------


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture
def make_config(family, request):
    """Build the family's tiny config with overrides, e.g. ``make_config(pretraining_objective="profile")``."""
    tiny = request.getfixturevalue(f"tiny_{family}_config")

    def build(**overrides):
        return type(tiny)(**{**tiny.to_diff_dict(), **overrides})

    return build


def _pretraining_class(family: str) -> type:
    return {"conv": protconv.ConvForPreTraining, "performer": protconv.PerformerForPreTraining}[family]


def _masked_lm_class(family: str) -> type:
    return {"conv": protconv.ConvForMaskedLM, "performer": protconv.PerformerForMaskedLM}[family]


def _batch(tokenizer) -> dict[str, torch.Tensor]:
    """Padded batch + MLM labels (every third residue) + random profile targets (zero at special/padding)."""
    batch = dict(tokenizer(SEQUENCES, padding=True, return_tensors="pt"))
    ids = batch["input_ids"]
    special = torch.isin(ids, torch.tensor([tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.eos_token_id]))
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    batch["labels"] = ids.masked_fill(special | (positions % 3 != 1), -100)
    targets = torch.distributions.Dirichlet(torch.full((20,), 0.5)).sample(ids.shape)
    batch["profile_targets"] = targets.masked_fill(special.unsqueeze(-1), 0.0)
    return batch


def _reference_kl(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) averaged over rows with a target, through torch's own ``kl_div``."""
    valid = targets.sum(-1) > 0
    log_probs = F.log_softmax(logits[valid].double(), dim=-1)
    return F.kl_div(log_probs, targets[valid].double(), reduction="sum") / int(valid.sum())


def _reference_mlm(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    keep = labels != -100
    return F.cross_entropy(logits[keep].double(), labels[keep])


# --- profile_kl_loss ------------------------------------------------------------------------------------------


def _two_position_example() -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform predictions (zero logits) against a one-hot and a two-way target."""
    targets = torch.zeros(1, 2, 20)
    targets[0, 0, 3] = 1.0
    targets[0, 1, :2] = 0.5
    return torch.zeros(1, 2, 20), targets


def test_kl_matches_hand_computed_values() -> None:
    logits, targets = _two_position_example()
    # KL(one-hot || uniform) = log 20; KL((1/2, 1/2, 0...) || uniform) = log(0.5 * 20) = log 10.
    expected = (math.log(20) + math.log(10)) / 2
    assert profile_kl_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(profile_kl_loss(logits, targets).double(), _reference_kl(logits, targets))


def test_kl_is_zero_when_prediction_equals_target() -> None:
    logits = torch.randn(2, 5, 20) * 3
    loss = profile_kl_loss(logits, torch.softmax(logits, dim=-1))
    assert loss.dtype == torch.float32 and abs(loss.item()) < 1e-6
    assert profile_kl_loss(torch.randn(2, 5, 20), torch.softmax(logits, dim=-1)).item() > 0.1


def test_kl_ignores_rows_without_target_and_averages_over_valid_rows() -> None:
    logits, targets = _two_position_example()
    padded_logits = torch.cat([logits, torch.randn(1, 3, 20) * 5], dim=1)
    padded_targets = torch.cat([targets, torch.zeros(1, 3, 20)], dim=1)
    reference = profile_kl_loss(logits, targets)
    assert torch.equal(profile_kl_loss(padded_logits, padded_targets), reference)
    padded_logits[0, 2:] = torch.randn(3, 20) * 5
    assert torch.equal(profile_kl_loss(padded_logits, padded_targets), reference)


def test_kl_gradient_is_softmax_minus_target_over_valid_count() -> None:
    logits = torch.randn(2, 4, 20, requires_grad=True)
    targets = torch.softmax(torch.randn(2, 4, 20), dim=-1)
    targets[1, 2:] = 0.0  # 6 valid rows
    profile_kl_loss(logits, targets).backward()
    expected = (torch.softmax(logits.detach(), dim=-1) - targets) / 6
    expected[1, 2:] = 0.0
    torch.testing.assert_close(logits.grad, expected)
    assert torch.count_nonzero(logits.grad[1, 2:]) == 0


def test_kl_computes_in_float32_for_half_precision_logits() -> None:
    logits, targets = _two_position_example()
    loss = profile_kl_loss(logits.bfloat16(), targets.bfloat16())
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx((math.log(20) + math.log(10)) / 2, rel=1e-6)


def test_kl_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"profile_targets shape \(1, 3, 21\) does not match .* \(1, 3, 20\)"):
        profile_kl_loss(torch.zeros(1, 3, 20), torch.zeros(1, 3, 21))
    with pytest.raises(ValueError, match="does not match"):
        profile_kl_loss(torch.zeros(1, 3, 20), torch.zeros(1, 4, 20))


def test_kl_without_valid_position_is_zero_and_differentiable() -> None:
    logits = torch.randn(2, 3, 20, requires_grad=True)
    loss = profile_kl_loss(logits, torch.zeros(2, 3, 20))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


# --- configuration --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pretraining_objective", "mlm+ss"),
        ("pretraining_objective", "MLM"),
        ("profile_task_weight", -1.0),
        ("profile_task_weight", float("nan")),
        ("profile_task_weight", "3"),
        ("profile_loss_scale", 0.0),
        ("profile_loss_scale", float("inf")),
        ("num_profile_classes", 1),
        ("num_profile_classes", 20.0),
        ("num_profile_classes", True),
    ],
)
def test_bad_pretraining_settings_name_the_field(make_config, field: str, value) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        make_config(**{field: value})


def test_pretraining_settings_defaults(make_config) -> None:
    config = make_config()
    assert config.pretraining_objective == "mlm"
    assert (config.profile_task_weight, config.profile_loss_scale, config.num_profile_classes) == (3.0, 10.0, 20)
    assert config.auto_map["AutoModelForPreTraining"].endswith("ForPreTraining")
    assert make_config(profile_task_weight=0).profile_task_weight == 0  # w = 0: plain MLM weighting, allowed


# --- the pretraining models -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("weight", "scale"), [(3.0, 10.0), (1.0, 10.0), (9.0, 2.5), (0.0, 10.0)])
def test_multitask_loss_weighting(family, make_config, tokenizer, weight: float, scale: float) -> None:
    config = make_config(pretraining_objective="mlm+profile", profile_task_weight=weight, profile_loss_scale=scale)
    model = _pretraining_class(family)(config).eval()
    batch = _batch(tokenizer)
    out = model(**batch)
    assert isinstance(out, ProteinPreTrainingOutput)
    alpha = weight / (weight + 1)
    torch.testing.assert_close(out.loss, (1 - alpha) * out.mlm_loss + alpha * scale * out.profile_loss)
    # The same number recomputed from the logits alone, with torch's own losses.
    mlm = _reference_mlm(out.logits, batch["labels"])
    kl = _reference_kl(out.profile_logits, batch["profile_targets"])
    torch.testing.assert_close(out.mlm_loss.double(), mlm)
    torch.testing.assert_close(out.profile_loss.double(), kl)
    torch.testing.assert_close(out.loss.double(), (1 - alpha) * mlm + alpha * scale * kl)
    if weight == 3.0 and scale == 10.0:
        torch.testing.assert_close(out.loss.double(), 0.25 * mlm + 7.5 * kl)


def test_multitask_with_one_kind_of_target_gives_its_weighted_term(family, make_config, tokenizer) -> None:
    model = _pretraining_class(family)(make_config(pretraining_objective="mlm+profile")).eval()
    batch = _batch(tokenizer)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    only_mlm = model(**inputs, labels=batch["labels"])
    assert only_mlm.profile_loss is None and only_mlm.profile_logits is not None
    torch.testing.assert_close(only_mlm.loss, 0.25 * only_mlm.mlm_loss)
    only_profile = model(**inputs, profile_targets=batch["profile_targets"])
    assert only_profile.mlm_loss is None and only_profile.logits is not None
    torch.testing.assert_close(only_profile.loss, 7.5 * only_profile.profile_loss)
    neither = model(**inputs)
    assert neither.loss is None and neither.mlm_loss is None and neither.profile_loss is None


def test_profile_objective_has_no_lm_head(family, make_config, tokenizer) -> None:
    model = _pretraining_class(family)(make_config(pretraining_objective="profile")).eval()
    assert model.lm_head is None and model.get_output_embeddings() is None
    assert not any(name.startswith("lm_head") for name in model.state_dict())
    batch = _batch(tokenizer)
    out = model(**batch)  # labels are ignored: no MLM task
    assert out.logits is None and out.mlm_loss is None
    assert out.profile_logits.shape == (*batch["input_ids"].shape, 20)
    assert torch.equal(out.loss, out.profile_loss)  # a single task: KL alone, unweighted
    torch.testing.assert_close(out.loss.double(), _reference_kl(out.profile_logits, batch["profile_targets"]))
    loss, _profile_loss, profile_logits = model(**batch, return_dict=False)  # the non-None fields, in order
    assert torch.equal(loss, out.loss) and torch.equal(profile_logits, out.profile_logits)


def test_mlm_objective_equals_masked_lm_model(family, make_config, tokenizer) -> None:
    config = make_config()
    masked_lm = _masked_lm_class(family)(config).eval()
    model = _pretraining_class(family)(config).eval()
    assert model.profile_head is None
    model.load_state_dict(masked_lm.state_dict(), strict=True)  # the same parameter names and shapes
    batch = _batch(tokenizer)
    out = model(**batch)
    expected = masked_lm(**{key: batch[key] for key in ("input_ids", "attention_mask", "labels")})
    assert torch.equal(out.logits, expected.logits) and torch.equal(out.loss, expected.loss)
    assert out.profile_logits is None and out.profile_loss is None
    assert model.get_output_embeddings() is model.lm_head


def test_profile_head_structure_and_initialisation(family, make_config) -> None:
    model = _pretraining_class(family)(make_config(pretraining_objective="mlm+profile"))
    head = model.profile_head
    hidden = model.config.hidden_size
    assert head.dense.weight.shape == (hidden, hidden) and head.out_proj.weight.shape == (20, hidden)
    assert head.layer_norm.eps == model.config.layer_norm_eps
    assert torch.equal(head.layer_norm.weight, torch.ones(hidden))
    # The paper's order: dense -> GELU -> LayerNorm -> projection.
    x = torch.randn(2, 3, hidden)
    transformed = F.layer_norm(
        F.gelu(F.linear(x, head.dense.weight, head.dense.bias)),
        (hidden,),
        head.layer_norm.weight,
        head.layer_norm.bias,
        model.config.layer_norm_eps,
    )
    torch.testing.assert_close(head(x), F.linear(transformed, head.out_proj.weight, head.out_proj.bias))
    if family == "performer":  # BERT-style N(0, 0.02), zero bias, not PyTorch's default uniform
        assert torch.count_nonzero(head.out_proj.bias) == 0
        assert head.dense.weight.std().item() == pytest.approx(0.02, rel=0.2)


# --- saving and loading ---------------------------------------------------------------------------------------


def test_save_load_round_trip(family, make_config, tokenizer, tmp_path) -> None:
    config = make_config(pretraining_objective="mlm+profile", profile_task_weight=1.5, profile_loss_scale=4.0)
    model = _pretraining_class(family)(config).eval()
    batch = _batch(tokenizer)
    with torch.no_grad():
        expected = model(**batch)
    model.save_pretrained(tmp_path)

    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    assert loaded.config.pretraining_objective == "mlm+profile"
    assert (loaded.config.profile_task_weight, loaded.config.profile_loss_scale) == (1.5, 4.0)
    assert loaded.config.num_profile_classes == 20
    with torch.no_grad():
        out = loaded(**batch)
    assert torch.equal(out.profile_logits, expected.profile_logits)
    assert torch.equal(out.logits, expected.logits) and torch.equal(out.loss, expected.loss)

    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    masked_lm = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert type(masked_lm) is _masked_lm_class(family)
    with torch.no_grad():
        assert torch.equal(masked_lm(**inputs).logits, expected.logits)
        encoder = AutoModel.from_pretrained(tmp_path).eval()
        hidden = encoder(**inputs).last_hidden_state
        assert torch.equal(hidden, model.base_model(**inputs).last_hidden_state)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert torch.equal(
        classifier.base_model.embeddings.word_embeddings.weight, model.base_model.embeddings.word_embeddings.weight
    )


def test_masked_lm_checkpoint_continues_as_multitask(family, make_config, tmp_path) -> None:
    """An MLM checkpoint loads into a multi-task model: backbone and decoder kept, profile head initialised."""
    masked_lm = _masked_lm_class(family)(make_config())
    masked_lm.save_pretrained(tmp_path)
    model = AutoModelForPreTraining.from_pretrained(tmp_path, pretraining_objective="mlm+profile")
    assert torch.equal(model.lm_head.weight, masked_lm.lm_head.weight)
    assert torch.equal(model.base_model.final_layer_norm.weight, masked_lm.base_model.final_layer_norm.weight)
    for name, tensor in model.profile_head.state_dict().items():
        assert torch.isfinite(tensor).all(), name
    assert model.profile_head.dense.weight.std() > 0
    assert torch.equal(model.profile_head.layer_norm.weight, torch.ones(model.config.hidden_size))


# --- training -------------------------------------------------------------------------------------------------


def test_adam_steps_reduce_the_profile_kl(family, make_config, tokenizer) -> None:
    model = _pretraining_class(family)(make_config(pretraining_objective="mlm+profile")).train()
    batch = _batch(tokenizer)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.profile_loss.item())
    assert model.profile_head.out_proj.weight.grad is not None
    assert losses[-1] < 0.75 * losses[0], losses
