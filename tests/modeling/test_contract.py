"""The contract every protconv model family keeps, written once and run for every family and every Auto class.

Families come from ``protconv.modeling.MODEL_FAMILIES`` and tasks from its registration tables, so a new family
(or a new head) is held to this contract as soon as it is registered: it only needs a ``tiny_<family>_config``
fixture in tests/conftest.py (and a new head an entry in ``TASKS``), or the suite fails.

What a family's own test module keeps is only what is specific to it (CARP's layout, FAVOR+, the redraw
schedule, positions, long contexts...).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import transformers
from transformers import PretrainedConfig, PreTrainedModel

import protconv
from protconv.hub import save_hub_folder
from protconv.modeling import MODEL_FAMILIES
from protconv.modeling.auto_classes import AUTO_MODEL_SUFFIXES, family_auto_map
from protconv.modeling.pooling import residue_mask
from tests.helpers import assert_loads_without_protconv, flat_outputs

MODELING_SOURCE = Path(protconv.modeling.__file__).parent
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
#: Every model is built with both pretraining heads, so that ``*ForPreTraining`` runs all of its code, and a
#: non-default task weight, so that a config field lost on the way shows.
CONTRACT_OVERRIDES = {"pretraining_objective": "mlm+profile", "profile_task_weight": 1.5}


# --- what each Auto class computes ----------------------------------------------------------------------------


def _no_targets(batch: dict, config: PretrainedConfig) -> dict:
    return {}


def _mlm_labels(batch: dict, config: PretrainedConfig) -> dict:
    """Every residue labelled with itself (-100 at special tokens and padding)."""
    residues = residue_mask(batch["input_ids"], batch["attention_mask"], config)
    return {"labels": batch["input_ids"].masked_fill(~residues, -100)}


def _pretraining_targets(batch: dict, config: PretrainedConfig) -> dict:
    residues = residue_mask(batch["input_ids"], batch["attention_mask"], config)
    profiles = torch.distributions.Dirichlet(torch.full((config.num_profile_classes,), 0.5))
    targets = profiles.sample(batch["input_ids"].shape).masked_fill(~residues.unsqueeze(-1), 0.0)
    return {**_mlm_labels(batch, config), "profile_targets": targets}


def _sequence_labels(batch: dict, config: PretrainedConfig) -> dict:
    return {"labels": torch.arange(batch["input_ids"].shape[0]) % config.num_labels}


def _token_labels(batch: dict, config: PretrainedConfig) -> dict:
    residues = residue_mask(batch["input_ids"], batch["attention_mask"], config)
    return {"labels": torch.randint(0, config.num_labels, batch["input_ids"].shape).masked_fill(~residues, -100)}


@dataclass(frozen=True)
class Task:
    """What the contract expects of one Auto class's models."""

    #: Whether the head reads the pooled vector (the backbone is then built with ``add_pooling_layer=True``).
    reads_pooled_output: bool
    #: Loss targets for a padded batch: keyword tensors of ``forward``.
    targets: Callable[[dict, PretrainedConfig], dict]
    #: The output fields without targets nor hidden states, and their shapes, for ``(batch, length, config)``.
    shapes: Callable[[int, int, PretrainedConfig], dict[str, tuple[int, ...]]]


TASKS: dict[str, Task] = {
    "AutoModel": Task(
        True,
        _no_targets,
        lambda b, n, c: {"last_hidden_state": (b, n, c.hidden_size), "pooler_output": (b, c.hidden_size)},
    ),
    "AutoModelForMaskedLM": Task(False, _mlm_labels, lambda b, n, c: {"logits": (b, n, c.vocab_size)}),
    "AutoModelForPreTraining": Task(
        False,
        _pretraining_targets,
        lambda b, n, c: {"logits": (b, n, c.vocab_size), "profile_logits": (b, n, c.num_profile_classes)},
    ),
    "AutoModelForSequenceClassification": Task(True, _sequence_labels, lambda b, n, c: {"logits": (b, c.num_labels)}),
    "AutoModelForTokenClassification": Task(False, _token_labels, lambda b, n, c: {"logits": (b, n, c.num_labels)}),
}

FAMILIES = [pytest.param(config_class, id=config_class.family) for config_class in MODEL_FAMILIES]
FAMILY_TASKS = [
    pytest.param(config_class, auto, id=f"{config_class.family}-{auto}")
    for config_class, table in MODEL_FAMILIES.items()
    for auto in table
]


def tiny_config(request: pytest.FixtureRequest, config_class: type, **overrides) -> PretrainedConfig:
    """The family's tiny config (fixture ``tiny_<family>_config``) with the contract's and the given overrides."""
    tiny = request.getfixturevalue(f"tiny_{config_class.family.lower()}_config")
    assert type(tiny) is config_class
    return config_class(**{**tiny.to_diff_dict(), **CONTRACT_OVERRIDES, **overrides})


def tiny_model(request: pytest.FixtureRequest, config_class: type, auto: str, **overrides) -> PreTrainedModel:
    return MODEL_FAMILIES[config_class][auto](tiny_config(request, config_class, **overrides))


@pytest.fixture
def sequences(real_proteins) -> list[str]:
    """Three real proteins of different lengths (71, 156 and 99 residues), the longest in the middle."""
    by_length = sorted(real_proteins, key=len)
    return [by_length[0], by_length[7], by_length[3]]


@pytest.fixture
def batch(tokenizer, sequences) -> dict[str, torch.Tensor]:
    encoded = tokenizer(sequences, padding=True, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def test_contract_covers_every_family_and_task() -> None:
    assert len(MODEL_FAMILIES) >= 2
    assert set(TASKS) == set(AUTO_MODEL_SUFFIXES), "give every Auto class its Task entry"
    for config_class, table in MODEL_FAMILIES.items():
        assert set(table) == set(AUTO_MODEL_SUFFIXES), config_class.family


# --- padding, outputs, hidden states ---------------------------------------------------------------------------


@pytest.mark.parametrize(("config_class", "auto"), FAMILY_TASKS)
def test_padded_batch_equals_sequences_alone(config_class, auto, request, tokenizer, sequences, batch) -> None:
    """Every output (hidden states included) of a sequence inside a padded batch is that of the sequence alone."""
    model = tiny_model(request, config_class, auto).eval()
    assert bool((batch["attention_mask"] == 0).any()), "the batch must be padded"
    with torch.no_grad():
        together = flat_outputs(model(**batch, output_hidden_states=True))
        for row, sequence in enumerate(sequences):
            alone = flat_outputs(model(**tokenizer(sequence, return_tensors="pt"), output_hidden_states=True))
            assert set(alone) == set(together)
            length = alone["hidden_states.0"].shape[1]
            for name, single in alone.items():
                mixed = together[name][row, :length] if single.ndim >= 3 else together[name][row]
                torch.testing.assert_close(mixed, single[0], **TOLERANCE, msg=lambda m, n=name, r=row: f"{n}[{r}]: {m}")


@pytest.mark.parametrize(("config_class", "auto"), FAMILY_TASKS)
def test_outputs_hidden_states_and_tuple_form(config_class, auto, request, batch) -> None:
    model = tiny_model(request, config_class, auto).eval()
    config, (size, length) = model.config, batch["input_ids"].shape
    with torch.no_grad():
        plain = flat_outputs(model(**batch))
        out = model(**batch, output_hidden_states=True)
        as_tuple = model(**batch, output_hidden_states=True, return_dict=False)
        backbone = model.base_model(**batch, output_hidden_states=True)
    assert {name: tuple(tensor.shape) for name, tensor in plain.items()} == TASKS[auto].shapes(size, length, config)

    # The embedding output and every layer's output, the same whichever head sits on the backbone.
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    for state, backbone_state in zip(out.hidden_states, backbone.hidden_states, strict=True):
        assert state.shape == (size, length, config.hidden_size)
        assert torch.equal(state, backbone_state)
    # Documented by every family: last_hidden_state is the final LayerNorm of the last layer's output.
    with torch.no_grad():
        assert torch.equal(model.base_model.final_layer_norm(out.hidden_states[-1]), backbone.last_hidden_state)

    # return_dict=False: the non-None fields in order.
    expected = out.to_tuple()
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(expected)
    for got, want in zip(as_tuple, expected, strict=True):
        pairs = zip(got, want, strict=True) if isinstance(want, tuple) else [(got, want)]
        assert all(torch.equal(a, b) for a, b in pairs)

    model.config.output_hidden_states = True  # the config's default applies when the argument is not given
    with torch.no_grad():
        assert len(model(**batch).hidden_states) == config.num_hidden_layers + 1


@pytest.mark.parametrize("config_class", FAMILIES)
def test_pooling_reads_real_residues_or_cls(config_class, request, batch) -> None:
    """Mean pooling averages real residues (never padding, <cls> or <eos>); cls pooling is position 0."""
    with torch.no_grad():
        mean_model = tiny_model(request, config_class, "AutoModel").eval()
        out = mean_model(**batch)
        for row in range(batch["input_ids"].shape[0]):
            residues = residue_mask(batch["input_ids"], batch["attention_mask"], mean_model.config)[row]
            assert int(residues.sum()) == int(batch["attention_mask"][row].sum()) - 2  # <cls> and <eos> left out
            expected = out.last_hidden_state[row, residues].mean(0)
            torch.testing.assert_close(out.pooler_output[row], expected, **TOLERANCE)
        cls_model = tiny_model(request, config_class, "AutoModel", pooling="cls").eval()
        out = cls_model(**batch)
    assert torch.equal(out.pooler_output, out.last_hidden_state[:, 0])


# --- training ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config_class", "auto"), FAMILY_TASKS)
def test_activation_checkpointing_gives_the_same_loss_and_gradients(config_class, auto, request, batch) -> None:
    """In training, with dropout everywhere: the recompute must reproduce the forward exactly."""
    model = tiny_model(request, config_class, auto, hidden_dropout_prob=0.1).train()
    inputs = {**batch, **TASKS[auto].targets(batch, model.config)}
    # A module inside a checkpointed layer runs again in the backward pass when (and only when) checkpointing is on.
    layer = next(m for m in model.modules() if isinstance(m, transformers.modeling_layers.GradientCheckpointingLayer))
    probe = next(m for m in layer.modules() if isinstance(m, torch.nn.Linear))
    calls = []
    probe.register_forward_hook(lambda *_: calls.append(1))

    def loss_and_gradients() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        calls.clear()
        torch.manual_seed(1)  # the same dropout masks in both runs
        out = model(**inputs)
        loss = out.loss if out.get("loss") is not None else sum(t.pow(2).mean() for t in flat_outputs(out).values())
        loss.backward()
        return loss.detach(), {name: param.grad for name, param in model.named_parameters()}

    loss, gradients = loss_and_gradients()
    assert len(calls) == 1
    assert loss.ndim == 0 and torch.isfinite(loss)
    # Every parameter takes part and learns (DDP without find_unused_parameters needs the former).
    assert not [name for name, grad in gradients.items() if grad is None or not bool(grad.any())]
    model.activation_checkpointing_enable()
    checkpointed_loss, checkpointed = loss_and_gradients()
    assert len(calls) == 2, "activation checkpointing did not recompute the layer"
    torch.testing.assert_close(checkpointed_loss, loss)
    for name, grad in gradients.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=lambda m, n=name: f"{n}: {m}")


# --- bad inputs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config_class", "auto"), FAMILY_TASKS)
def test_bad_inputs_raise_clear_errors(config_class, auto, request, tokenizer) -> None:
    model = tiny_model(request, config_class, auto).eval()
    vocab = model.config.vocab_size
    ids = tokenizer(["MKT", "ACD"], return_tensors="pt")["input_ids"]  # <cls> M K T <eos>, <cls> A C D <eos>
    cases = [
        ({}, "input_ids is required"),
        ({"attention_mask": torch.ones(2, 5)}, "input_ids is required"),
        ({"input_ids": torch.tensor([5, 6, 7])}, r"input_ids must have shape \(batch, length\), got \(3,\)"),
        ({"input_ids": torch.zeros((0, 5), dtype=torch.long)}, r"empty batch: input_ids has shape \(0, 5\)"),
        ({"input_ids": torch.zeros((2, 0), dtype=torch.long)}, r"empty batch: input_ids has shape \(2, 0\)"),
        ({"input_ids": ids.float()}, "input_ids must hold integer token ids, got dtype torch.float32"),
        (
            {"input_ids": ids.index_put((torch.tensor(1), torch.tensor(3)), torch.tensor(vocab))},
            rf"token id {vocab} at \(row, position\) \(1, 3\) is outside the vocabulary \[0, {vocab}\)",
        ),
        (
            {"input_ids": ids.index_put((torch.tensor(0), torch.tensor(2)), torch.tensor(-1))},
            r"token id -1 at \(row, position\) \(0, 2\) is outside the vocabulary",
        ),
        (
            {"input_ids": ids, "attention_mask": torch.ones(2, 4)},
            r"attention_mask shape \(2, 4\) does not match input_ids shape \(2, 5\)",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            model(**kwargs)

    # A row without a residue (only <cls><eos> and padding) and a batch without <cls>.
    no_residue = tokenizer(["MKTAYIAK", ""], padding=True, return_tensors="pt")
    no_cls = protconv.build_tokenizer(add_cls=False)(["MKT", "MK"], padding=True, return_tensors="pt")
    cls_model = tiny_model(request, config_class, auto, pooling="cls").eval()
    if TASKS[auto].reads_pooled_output:
        with torch.no_grad():
            assert model.base_model(input_ids=ids).pooler_output is not None
        with pytest.raises(ValueError, match=r"mean pooling: batch rows \[1\] contain no residue"):
            model(**no_residue)
        with pytest.raises(ValueError, match=r"pooling='cls' needs <cls> at position 0; batch rows \[0, 1\] lack it"):
            cls_model(**no_cls)
    else:  # the head reads every position: nothing is pooled, and such rows are fine
        with torch.no_grad():
            assert model.base_model(**no_residue).pooler_output is None
            for name, tensor in {**flat_outputs(model(**no_residue)), **flat_outputs(cls_model(**no_cls))}.items():
                assert torch.isfinite(tensor).all(), name


# --- forward arguments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config_class", "auto"), FAMILY_TASKS)
def test_forward_names_every_argument_it_accepts(config_class, auto, request, batch) -> None:
    """The arguments Trainer, pipelines and peft's wrappers pass work; any other is a ``TypeError`` naming it
    rather than silently ignored, and ``inputs_embeds`` (passed as ``None``) refuses a tensor."""
    model = tiny_model(request, config_class, auto).eval()
    standard = {"return_dict": True, "output_hidden_states": False, "output_attentions": None, "inputs_embeds": None}
    if auto != "AutoModel":  # what Trainer adds for a model taking loss keywords (ignored: see accepts_loss_kwargs)
        standard["num_items_in_batch"] = torch.tensor(7)
    with torch.no_grad():
        plain, passed = flat_outputs(model(**batch)), flat_outputs(model(**batch, **standard))
    assert set(plain) == set(passed) and all(torch.equal(plain[name], passed[name]) for name in plain)
    with pytest.raises(TypeError, match="unexpected keyword argument 'output_hidden_state'"):
        model(**batch, output_hidden_state=True)
    with pytest.raises(ValueError, match="inputs_embeds is not supported"):
        model(**batch, inputs_embeds=torch.zeros(*batch["input_ids"].shape, model.config.hidden_size))


@pytest.mark.parametrize("config_class", FAMILIES)
def test_trainer_averages_accumulated_steps_itself(config_class, request, tmp_path) -> None:
    """The losses are per-batch means: Trainer must not pass ``num_items_in_batch`` (it would then skip dividing
    the loss by the gradient-accumulation steps), which it decides from ``accepts_loss_kwargs``."""
    model = tiny_model(request, config_class, "AutoModelForMaskedLM")
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    assert transformers.Trainer(model=model, args=args).model_accepts_loss_kwargs is False


# --- saving and loading -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config_class", "auto"), FAMILY_TASKS)
def test_save_and_load_through_the_auto_classes(config_class, auto, request, batch, tmp_path) -> None:
    model = tiny_model(request, config_class, auto).eval()
    auto_class = getattr(transformers, auto)
    assert type(transformers.AutoConfig.for_model(config_class.model_type)) is config_class
    assert type(auto_class.from_config(model.config)) is type(model)
    inputs = {**batch, **TASKS[auto].targets(batch, model.config)}
    with torch.no_grad():
        expected = flat_outputs(model(**inputs, output_hidden_states=True))
    model.save_pretrained(tmp_path)

    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == family_auto_map(config_class.family)
    assert saved["architectures"] == [type(model).__name__]
    config = transformers.AutoConfig.from_pretrained(tmp_path)
    assert type(config) is config_class and config.to_diff_dict() == model.config.to_diff_dict()

    loaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    with torch.no_grad():
        got = flat_outputs(loaded(**inputs, output_hidden_states=True))
    assert set(got) == set(expected)
    for name, tensor in got.items():
        assert torch.equal(tensor, expected[name]), name


def shipped_modules(config_class: type) -> set[str]:
    """The files of src/protconv/modeling that the family's auto_map modules import (``from .x import``), directly
    or not: all of them must travel with the weights. (That they import nothing else but torch, transformers and
    the standard library is tests/test_layout.py's business.)"""
    pending = [target.split(".")[0] for target in family_auto_map(config_class.family).values()]
    needed: set[str] = set()
    while pending:
        module = pending.pop()
        if module not in needed:
            needed.add(module)
            tree = ast.parse((MODELING_SOURCE / f"{module}.py").read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    pending += [node.module] if node.module else [alias.name for alias in node.names]
    return {f"{module}.py" for module in needed}


def test_shipped_modules_follow_imports_transitively() -> None:
    performer = shipped_modules(protconv.PerformerConfig)
    # favor/pooling/losses: imported by modeling_performer and task_models; vocabulary: only through other files.
    assert {"modeling_performer.py", "configuration_performer.py", "favor.py", "pooling.py", "losses.py"} <= performer
    assert {"heads.py", "outputs.py", "model_inputs.py", "vocabulary.py", "configuration_base.py"} <= performer
    assert "modeling_conv.py" not in performer and "favor.py" not in shipped_modules(protconv.ConvConfig)


@pytest.mark.parametrize("config_class", FAMILIES)
def test_hub_folder_loads_with_remote_code_without_protconv(
    config_class, request, tokenizer, sequences, batch, tmp_path
) -> None:
    """One folder, saved from the model with the most heads, loads through every Auto class of its auto_map in an
    interpreter without protconv, and computes exactly what protconv computes (tests/helpers.py)."""
    table = MODEL_FAMILIES[config_class]
    model = tiny_model(request, config_class, "AutoModelForPreTraining").eval()
    folder = save_hub_folder(model, tokenizer, tmp_path / "hub")

    # Every module the shipped code imports is shipped, as it is in the source.
    for name in sorted(shipped_modules(config_class)):
        assert (folder / name).is_file(), f"{name} is not shipped"
        assert (folder / name).read_bytes() == (MODELING_SOURCE / name).read_bytes(), f"{name} differs"

    inputs = {auto: {**batch, **TASKS[auto].targets(batch, model.config)} for auto in table}
    outputs = assert_loads_without_protconv(folder, inputs, tmp_path, sequences=sequences)
    with torch.no_grad():
        own = flat_outputs(model(**inputs["AutoModelForPreTraining"], output_hidden_states=True))
    assert set(outputs["AutoModelForPreTraining"]) == set(own)
    assert all(torch.equal(tensor, own[name]) for name, tensor in outputs["AutoModelForPreTraining"].items())
