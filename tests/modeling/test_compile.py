"""``torch.compile(model, fullgraph=True)``: every family and head traces without a graph break (``fullgraph``
raises on one) and computes what eager mode computes, in inference and in training (the Performer's feature
redraw included); the value checks skipped while compiling still run eagerly.

Backends: dynamo's tracing is what finds graph breaks, so inference uses the ``"eager"`` backend (it runs the
captured graph as it is, ~1 s per model on CPU); training uses ``"aot_eager"``, whose functionalisation is what
buffer updates (the redraw step and projections) and the backward pass go through under inductor (~2.5 s per
model). Inductor itself takes 3 to 30 s per tiny model on CPU and changes sums' order (max abs diff ~1e-6):
not run here.
"""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedModel

from protconv.modeling import MODEL_FAMILIES
from tests.helpers import flat_outputs

#: The Auto classes users compile: the encoder (pooled), masked LM, and the two fine-tuning heads.
COMPILED = [
    "AutoModel",
    "AutoModelForMaskedLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
]
VARIANTS = {
    "Conv": ("conv", {}),
    "Performer-favor": ("performer", {}),
    "Performer-softmax": ("performer", {"attention": "softmax"}),
}


def _model(request: pytest.FixtureRequest, variant: str, auto: str, **overrides) -> PreTrainedModel:
    family, variant_overrides = VARIANTS[variant]
    tiny = request.getfixturevalue(f"tiny_{family}_config")
    config = type(tiny)(**{**tiny.to_diff_dict(), "num_labels": 3, **variant_overrides, **overrides})
    return MODEL_FAMILIES[type(config)][auto](config)


def _labels(auto: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    real = batch["attention_mask"].bool()
    if auto == "AutoModelForSequenceClassification":
        return {"labels": torch.tensor([0, 2, 1])}
    if auto == "AutoModelForTokenClassification":
        return {"labels": (batch["input_ids"] % 3).masked_fill(~real, -100)}
    if auto == "AutoModelForMaskedLM":
        return {"labels": batch["input_ids"].masked_fill(~real, -100)}
    return {}


@pytest.fixture
def batch(tokenizer, real_proteins) -> dict[str, torch.Tensor]:
    """Three proteins of different lengths: padded."""
    encoded = tokenizer([real_proteins[0][:40], real_proteins[1][:90], real_proteins[2][:25]], padding=True,
                        return_tensors="pt")  # fmt: skip
    assert not bool(encoded["attention_mask"].all())
    return dict(encoded)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("auto", COMPILED)
@pytest.mark.parametrize("variant", VARIANTS)
def test_compiled_inference_equals_eager(variant, auto, request, batch) -> None:
    model = _model(request, variant, auto).eval()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    inputs = {**batch, **_labels(auto, batch), "output_hidden_states": True}
    with torch.no_grad():
        expected, got = flat_outputs(model(**inputs)), flat_outputs(compiled(**inputs))
    assert set(got) == set(expected)
    for name, tensor in got.items():
        assert torch.equal(tensor, expected[name]), (name, float((tensor - expected[name]).abs().max()))


def test_compiled_attention_weights_equal_eager(request, batch) -> None:
    model = _model(request, "Performer-softmax", "AutoModel").eval()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        expected, got = model(**batch, output_attentions=True), compiled(**batch, output_attentions=True)
    assert all(torch.equal(a, b) for a, b in zip(got.attentions, expected.attentions, strict=True))


def test_compiled_bf16_conv_on_cpu_matches_the_packed_eager_path(request, batch) -> None:
    """In bf16 on the CPU, eager inference packs the real positions (data-dependent shapes); compiled, the blocks
    run unpacked: real positions agree to bf16 precision."""
    model = _model(request, "Conv", "AutoModelForMaskedLM").eval().to(torch.bfloat16)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        expected, got = model(**batch).logits, compiled(**batch).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real].float(), expected[real].float(), rtol=0.03, atol=0.03)


def _train_steps(model: PreTrainedModel, run, batch: dict, steps: int) -> list[dict]:
    """Loss, gradients and (Performer) projections and step counter after each of ``steps`` SGD steps."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = run(**batch).loss
        loss.backward()
        optimizer.step()
        record = {"loss": loss.detach(), **{n: p.grad.clone() for n, p in model.named_parameters()}}
        base = model.base_model
        if hasattr(base, "feature_redraw_step"):
            record["step"] = base.feature_redraw_step.clone()
            record.update(
                {f"projection.{i}": layer.attention.projection.clone() for i, layer in enumerate(base.layers)}
            )
        history.append(record)
    return history


@pytest.mark.parametrize("variant", ["Conv", "Performer-favor"])
def test_compiled_training_equals_eager_with_the_feature_redraw(variant, request, batch) -> None:
    """Training compiled: the same losses and gradients step by step, and the Performer redraws its features on
    the same schedule (every 2 steps here) to the same draws, inside the graph."""
    eager = _model(request, variant, "AutoModelForMaskedLM", feature_redraw_interval=2).train()
    twin = _model(request, variant, "AutoModelForMaskedLM", feature_redraw_interval=2).train()
    twin.load_state_dict(eager.state_dict())
    inputs = {**batch, **_labels("AutoModelForMaskedLM", batch)}
    expected = _train_steps(eager, eager, inputs, steps=5)
    got = _train_steps(twin, torch.compile(twin, fullgraph=True, backend="aot_eager"), inputs, steps=5)
    for step, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert set(want) == set(have)
        for name, tensor in have.items():
            if name == "step" or name.startswith("projection"):  # the schedule: exact by construction
                assert torch.equal(tensor, want[name]), (step, name)
            else:  # bit for bit on CPU with torch 2.13; a tight tolerance in case AOT's backward is reordered
                torch.testing.assert_close(tensor, want[name], rtol=1e-6, atol=1e-7, msg=f"step {step} {name}")
    if variant == "Performer-favor":
        assert int(got[-1]["step"]) == 5
        assert not torch.equal(got[0]["projection.0"], got[1]["projection.0"])  # redrawn at step 2


def test_value_checks_run_eagerly_and_are_skipped_compiled(request, tokenizer) -> None:
    """The checks that read values raise in eager mode; a compiled model trusts its input (no host
    synchronisation): a row without a residue pools to NaN instead of raising."""
    model = _model(request, "Conv", "AutoModel").eval()
    no_residue = dict(tokenizer(["MKTAYIAK", ""], padding=True, return_tensors="pt"))
    vocab = model.config.vocab_size
    bad_id = no_residue["input_ids"].clone()
    bad_id[0, 2] = vocab
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"mean pooling: batch rows \[1\] contain no residue"):
            model(**no_residue)
        with pytest.raises(ValueError, match=rf"token id {vocab} at \(row, position\) \(0, 2\) is outside"):
            model(input_ids=bad_id)
        pooled = torch.compile(model, fullgraph=True, backend="eager")(**no_residue).pooler_output
        assert torch.isfinite(pooled[0]).all() and torch.isnan(pooled[1]).all()
        with pytest.raises(ValueError, match="mean pooling"):  # the model itself still checks
            model(**no_residue)


def test_graph_break_counts_are_zero(request, batch) -> None:
    """``torch._dynamo.explain`` (what ``fullgraph`` enforces) for one model per family, as a readable figure."""
    for variant in ("Conv", "Performer-favor"):
        model = _model(request, variant, "AutoModelForSequenceClassification").eval()
        with torch.no_grad():
            explanation = torch._dynamo.explain(model)(**batch)
        assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons
