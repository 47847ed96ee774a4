"""The accelerate pretraining loop, single process on CPU: outputs, exact resume, crash safety, bad input."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

import protconv
from protconv.pretraining import (
    CheckpointError,
    DataArguments,
    ModelArguments,
    NonFiniteLossError,
    PretrainingArguments,
    loop,
    parse_arguments,
    pretrain,
)
from protconv.pretraining.metrics import objective_sums
from protconv.registry import available_presets, resolve_config
from tests.helpers import DATA

TINY = "hidden_size=32,intermediate_size=16,num_hidden_layers=4,max_dilation=4"


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """Each run builds its own Accelerator; accelerate keeps process-wide singletons that must not leak."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def arguments(output_dir: Path, **train) -> tuple[ModelArguments, DataArguments, PretrainingArguments]:
    model = ModelArguments(model="protconv_conv", config_overrides=TINY)
    data = DataArguments(
        train_files=[str(DATA / "some_proteins.fasta")],
        validation_fraction=0.2,
        max_length=128,
        max_tokens_per_batch=512,
        prefetch_batches=1,
    )
    options = dict(
        output_dir=str(output_dir), max_steps=6, save_steps=2, eval_steps=3, logging_steps=1, warmup_steps=2,
        disable_tqdm=True, learning_rate=3e-3, gradient_accumulation_steps=2,
    )  # fmt: skip
    options.update(train)
    return model, data, PretrainingArguments(**options)


def test_run_writes_metrics_plot_checkpoints_and_a_hub_folder(tmp_path) -> None:
    result = pretrain(*arguments(tmp_path / "run", save_total_limit=2))
    run = tmp_path / "run"
    assert result.step == 6 and result.skipped_steps == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "validation"] == [0, 3, 6]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert all(0 <= r["padding_fraction"] < 1 and r["tokens_per_second"] > 0 for r in records if r["split"] == "train")
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-00000004", "checkpoint-00000006"]
    model = AutoModelForMaskedLM.from_pretrained(result.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    assert model.config.hidden_size == 32 and model.config.auto_map["AutoModelForMaskedLM"]
    card = (result.model_dir / "README.md").read_text()
    assert f"{result.validation['perplexity']:.4f}" in card and "max_tokens_per_batch: 512" in card
    assert_card_reproduces_the_run(result, run, tmp_path)
    logits = model(**tokenizer("MKTAYIAK<mask>QR", return_tensors="pt")).logits
    assert torch.isfinite(logits).all()


def assert_card_reproduces_the_run(result, run: Path, tmp_path: Path) -> None:
    """The card is Hub metadata plus a config block that ``--config`` reads back into the same arguments."""
    import re

    from huggingface_hub import ModelCard

    card = ModelCard.load(result.model_dir / "README.md")
    assert card.data.pipeline_tag == "fill-mask" and card.data.license == "mit"
    assert card.data.model_name and card.data.eval_results
    figures = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert figures["perplexity"] == pytest.approx(result.validation["perplexity"], abs=1e-4)
    assert str(tmp_path) not in card.content, "no local path in a published card"
    (block,) = re.findall(r"```yaml\n(.*?)```", card.text, flags=re.DOTALL)
    beside_the_data = tmp_path / "reproduce"
    beside_the_data.mkdir()
    (beside_the_data / "some_proteins.fasta").write_bytes((DATA / "some_proteins.fasta").read_bytes())
    (beside_the_data / "run.yaml").write_text(block)
    model, data, train = parse_arguments(["--config", str(beside_the_data / "run.yaml"), "--output_dir", "x"])
    original = arguments(run)
    assert data.train_files == [str(beside_the_data / "some_proteins.fasta")]
    assert (model, replace(data, train_files=original[1].train_files)) == original[:2]
    assert train.learning_rate == original[2].learning_rate and train.max_steps == original[2].max_steps


def test_resume_reaches_bit_identical_weights(tmp_path) -> None:
    straight = pretrain(*arguments(tmp_path / "straight"))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    model_args, data_args, train_args = arguments(tmp_path / "split", stop_after_steps=3, save_steps=3)
    first = pretrain(model_args, data_args, train_args)
    assert first.step == 3 and first.model_dir is None
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    resumed = pretrain(model_args, data_args, replace(train_args, stop_after_steps=None, resume=True))
    expected = load_file(straight.model_dir / "model.safetensors")
    actual = load_file(resumed.model_dir / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "a resumed run must not log steps twice"


def test_interrupted_save_and_incomplete_checkpoints_are_never_resumed_from(tmp_path) -> None:
    model_args, data_args, train_args = arguments(tmp_path / "run", stop_after_steps=2, eval_at_start=False)
    pretrain(model_args, data_args, train_args)
    checkpoints = tmp_path / "run" / "checkpoints"
    (checkpoints / ".tmp-checkpoint-00000004").mkdir()  # killed during save_state
    (checkpoints / "checkpoint-00000009").mkdir()  # no trainer_state.json: never completed
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    result = pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=4))
    assert result.step == 4
    assert not (checkpoints / ".tmp-checkpoint-00000004").exists()


def test_resume_errors_are_clear(tmp_path) -> None:
    model_args, data_args, train_args = arguments(tmp_path / "run", stop_after_steps=2, eval_at_start=False)
    pretrain(model_args, data_args, train_args)
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(model_args, data_args, train_args)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-00000002"
    (checkpoint / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"model\.safetensors has 22 bytes.*truncated or altered"):
        pretrain(model_args, data_args, replace(train_args, resume=True))


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_from_step_0(tmp_path) -> None:
    model_args, data_args, train_args = arguments(tmp_path / "run", stop_after_steps=2, eval_at_start=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 3.0}\n')  # killed at step 1
    (run / "checkpoints" / ".tmp-checkpoint-00000002").mkdir(parents=True)  # killed during the first save
    result = pretrain(model_args, data_args, replace(train_args, resume=True))
    assert result.step == 2
    assert "no complete checkpoint" in (run / "protconv.log").read_text()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(1) == 1, "the killed run's metrics are not kept"
    _reset()
    pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=None))  # model/ now exists
    _reset()
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(CheckpointError, match="holds a finished model"):
        pretrain(model_args, data_args, replace(train_args, resume=True))


class _NaNAfter(protconv.ConvForMaskedLM):
    """Produces NaN logits from its ``bad_from``-th forward call on (training mode only)."""

    bad_from, bad_until, calls = 0, 10**9, 0

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        if self.training:
            type(self).calls += 1
            if self.bad_from <= type(self).calls <= self.bad_until:
                output.logits = output.logits * float("nan")
        return output


def test_non_finite_loss_skips_the_step_then_stops_if_it_repeats(tmp_path) -> None:
    config = resolve_config("protconv_conv", {"hidden_size": 32, "intermediate_size": 16, "num_hidden_layers": 2})
    _NaNAfter.bad_from, _NaNAfter.bad_until, _NaNAfter.calls = 3, 3, 0
    result = pretrain(*arguments(tmp_path / "once"), model=_NaNAfter(config))
    assert result.step == 6 and result.skipped_steps == 1
    events = [json.loads(line) for line in (tmp_path / "once" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["split"] == "event"] == [2]
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    _NaNAfter.bad_from, _NaNAfter.bad_until, _NaNAfter.calls = 1, 10**9, 0
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps"):
        pretrain(*arguments(tmp_path / "always"), model=_NaNAfter(config))


def test_yaml_config_with_command_line_overrides(tmp_path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: carp-600k\ntrain_files: [a.fasta, b.fasta.gz]\nmax_steps: 50\nadd_eos: false\n"
        "config_overrides: {num_hidden_layers: 2}\nreport_to: [tensorboard]\n"
    )
    model_args, data_args, train_args = parse_arguments(["--config", str(config), "--max_steps", "7", "--seed", "3"])
    assert (model_args.model, model_args.config_overrides) == ("carp-600k", "num_hidden_layers=2")
    assert data_args.train_files == [str(tmp_path / "a.fasta"), str(tmp_path / "b.fasta.gz")]  # beside the config
    assert data_args.add_eos is False
    assert (train_args.max_steps, train_args.seed, train_args.report_to) == (7, 3, ["tensorboard"])
    config.write_text("modle: carp-600k\n")
    with pytest.raises(ValueError, match=r"unknown arguments \['modle'\]"):
        parse_arguments(["--config", str(config)])
    with pytest.raises(ValueError, match="no training data"):
        parse_arguments([])


def test_models_resolve_by_preset_type_or_folder(tmp_path) -> None:
    assert "carp-600k" in available_presets()
    config = resolve_config("carp-600k", {"num_hidden_layers": 2})
    assert type(config).__name__ == "ConvConfig" and config.num_hidden_layers == 2 and config.hidden_size == 128
    config.save_pretrained(tmp_path)
    assert resolve_config(str(tmp_path)).num_hidden_layers == 2
    with pytest.raises(ValueError, match="carp-600k"):
        resolve_config("carp-6k")
    for name, config_class in available_presets().items():  # every registered family's presets build
        assert isinstance(resolve_config(name), config_class)


def test_protconv_pretrain_command(tmp_path, capsys) -> None:
    from protconv.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"model: protconv_conv\nconfig_overrides: {{hidden_size: 16, intermediate_size: 8, num_hidden_layers: 2}}\n"
        f"train_files: [{DATA / 'some_proteins.fasta'}]\nmax_length: 128\nmax_tokens_per_batch: 512\n"
        f"max_steps: 2\neval_steps: 2\ndisable_tqdm: true\noutput_dir: {tmp_path / 'run'}\n"
    )
    assert main(["pretrain", "--config", str(config), "--max_steps", "1", "--warmup_steps", "0"]) == 0
    assert "stopped at step 1; model saved to" in capsys.readouterr().out
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    assert main(["pretrain", "--config", str(config), "--resume_from", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def profile_arguments(output_dir: Path, objective: str, **train) -> tuple:
    model_args, data_args, train_args = arguments(output_dir, **train)
    model_args = replace(model_args, pretraining_objective=objective)
    data_args = replace(
        data_args, train_files=[], msa_files=[str(DATA / "msa")], max_length=160, max_tokens_per_batch=1280
    )
    return model_args, data_args, train_args


def test_multitask_pretraining_on_msas_lowers_the_profile_kl(tmp_path) -> None:
    result = pretrain(*profile_arguments(tmp_path / "run", "mlm+profile", max_steps=24, eval_steps=12))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [0, 12, 24]
    assert validation[-1]["profile_kl"] < 0.8 * validation[0]["profile_kl"]
    assert list((tmp_path / "run" / "profile_cache").glob("*.npz")), "profiles are cached next to the run"
    model = protconv.ConvForPreTraining.from_pretrained(result.model_dir)
    assert model.config.pretraining_objective == "mlm+profile" and model.profile_head is not None
    assert "MSA profile prediction" in (result.model_dir / "README.md").read_text()
    masked_lm = AutoModelForMaskedLM.from_pretrained(result.model_dir)  # the MLM half keeps working on its own
    assert torch.equal(masked_lm.lm_head.weight, model.lm_head.weight)


def _objective_calls(monkeypatch) -> list[tuple[bool, SimpleNamespace]]:
    """Every micro-batch the loop computes a loss of, in order: (under autograd, i.e. training; its tensors)."""
    calls = []

    def spy(config, output, labels, targets, attention_mask):
        profile_logits = getattr(output, "profile_logits", None)
        profile_logits = None if profile_logits is None else profile_logits.detach()
        seen = SimpleNamespace(logits=output.logits.detach(), profile_logits=profile_logits)
        seen.labels, seen.targets = labels, targets
        calls.append((torch.is_grad_enabled(), seen))
        return objective_sums(config, output, labels, targets, attention_mask)

    monkeypatch.setattr(loop, "objective_sums", spy)
    return calls


def _weighted_loss_by_hand(batch: SimpleNamespace) -> float:
    """The paper's weighting (weight 3, scale 10) of one micro-batch's own means; no profile position: no KL."""
    mlm = torch.nn.functional.cross_entropy(batch.logits.flatten(0, 1), batch.labels.flatten(), ignore_index=-100)
    log_probs = torch.log_softmax(batch.profile_logits, -1)
    valid = batch.targets.sum(-1) > 0
    kl = (torch.special.xlogy(batch.targets, batch.targets) - batch.targets * log_probs).sum(-1)[valid]
    return float(0.25 * mlm + 0.75 * 10 * (kl.mean() if valid.any() else 0.0))


def _passes(calls: list[tuple[bool, SimpleNamespace]], training: bool, size: int | None = None) -> list[list]:
    """Consecutive micro-batches of one kind (training windows of ``size``, or whole validation passes)."""
    groups: list[list] = []
    for index, (grad, batch) in enumerate(calls):
        if grad != training:
            continue
        if not groups or calls[index - 1][0] != training or (size is not None and len(groups[-1]) == size):
            groups.append([])
        groups[-1].append(batch)
    return groups


def test_mixed_fasta_and_msa_runs_log_the_loss_that_training_optimises(tmp_path, monkeypatch) -> None:
    calls = _objective_calls(monkeypatch)
    model_args, data_args, train_args = profile_arguments(tmp_path / "run", "mlm+profile", max_steps=4, eval_steps=2)
    fasta, msa = DATA / "some_proteins.fasta", DATA / "msa" / "UniRef50_E9K9Y4.a3m"
    data_args = replace(
        data_args, train_files=[str(fasta)], msa_files=[str(msa)], validation_fraction=0.3, max_tokens_per_batch=640
    )
    pretrain(model_args, data_args, train_args)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    validation, passes = [r for r in records if r["split"] == "validation"], _passes(calls, training=False)
    assert len(validation) == len(passes) == 3
    assert any(not (b.targets.sum(-1) > 0).any() for b in passes[0]), "a validation batch without profile positions"
    for record, batches in zip(validation, passes, strict=True):
        by_hand = [_weighted_loss_by_hand(batch) for batch in batches]
        assert record["loss"] == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)
    train, windows = [r for r in records if r["split"] == "train"], _passes(calls, training=True, size=2)
    assert len(train) == len(windows) == 4
    for record, batches in zip(train, windows, strict=True):
        assert record["loss"] == pytest.approx(sum(map(_weighted_loss_by_hand, batches)) / 2, rel=1e-5)


def test_masked_lm_runs_log_the_token_averaged_loss(tmp_path, monkeypatch) -> None:
    calls = _objective_calls(monkeypatch)
    pretrain(*arguments(tmp_path / "run", max_steps=2, eval_steps=2))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    batches = _passes(calls, training=False)[-1]
    cross_entropy = torch.nn.functional.cross_entropy
    total = sum(float(cross_entropy(b.logits.flatten(0, 1), b.labels.flatten(), reduction="sum")) for b in batches)
    masked = sum(int((b.labels != -100).sum()) for b in batches)
    assert records[-1]["split"] == "validation" and records[-1]["loss"] == pytest.approx(total / masked, rel=1e-5)
    assert all(r["loss"] == pytest.approx(math.log(r["perplexity"])) for r in records if "perplexity" in r)


def test_profile_only_pretraining_resumes_exactly(tmp_path) -> None:
    straight = pretrain(*profile_arguments(tmp_path / "straight", "profile"))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    model_args, data_args, train_args = profile_arguments(tmp_path / "split", "profile", stop_after_steps=3)
    pretrain(model_args, data_args, train_args)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    resumed = pretrain(model_args, data_args, replace(train_args, stop_after_steps=None, resume=True))
    expected = load_file(straight.model_dir / "model.safetensors")
    actual = load_file(resumed.model_dir / "model.safetensors")
    assert not any(name.startswith("lm_head") for name in expected), "profile-only models have no MLM head"
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert "perplexity" not in straight.validation and straight.validation["loss"] == straight.validation["profile_kl"]


def test_profile_objective_without_msas_is_refused(tmp_path) -> None:
    model_args, data_args, train_args = arguments(tmp_path / "run")
    with pytest.raises(ValueError, match="needs profile targets: pass --msa_files"):
        pretrain(replace(model_args, pretraining_objective="mlm+profile"), data_args, train_args)


def _tiny_config(folder: Path, output_dir: str, **extra: object) -> Path:
    """A YAML config of a two-step run of a tiny model; ``output_dir`` is relative to ``folder``."""
    config = folder / f"{output_dir}.yaml"
    lines = [
        "model: protconv_conv",
        "config_overrides: {hidden_size: 16, intermediate_size: 8, num_hidden_layers: 2}",
        f"train_files: [{DATA / 'some_proteins.fasta'}]",
        "validation_fraction: 0.2\nmax_length: 128\nmax_tokens_per_batch: 512",
        "max_steps: 2\neval_steps: 1\nwarmup_steps: 0\ndisable_tqdm: true",
        f"output_dir: {output_dir}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def _reset() -> None:
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_pretrain_tells_its_story_on_the_console_and_in_the_run_log(tmp_path, capsys) -> None:
    from protconv.cli import main

    config = _tiny_config(tmp_path, "tiny-run")
    assert main(["pretrain", "--config", str(config), "--stop_after_steps", "1"]) == 0
    err, log_file = capsys.readouterr().err, tmp_path / "tiny-run" / "protconv.log"
    log = log_file.read_text()
    for text in (err, log):
        assert "INFO protconv.pretraining.loop: run tiny-run: protconv_conv (" in text
        assert "INFO protconv.pretraining.loop: step 1: validation loss" in text
    assert all(
        re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) protconv\.", line) for line in log.splitlines()
    )
    _reset()
    assert main(["pretrain", "--config", str(config), "--resume", "--log_level", "warning"]) == 0
    assert " INFO " not in capsys.readouterr().err
    appended = log_file.read_text()
    assert appended.startswith(log) and " INFO " not in appended[len(log) :]


def test_trackers_name_the_run_after_run_name_or_the_output_folder(tmp_path, monkeypatch) -> None:
    import accelerate.tracking
    from accelerate.utils import LoggerType

    from protconv.cli import main

    started, logged = [], []
    run = SimpleNamespace(log=lambda values, step=None: logged.append(step), finish=lambda: None)
    wandb = ModuleType("wandb")
    wandb.init = lambda **kwargs: started.append(kwargs) or run
    wandb.config = SimpleNamespace(update=lambda values, allow_val_change=False: None)
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setattr(accelerate.tracking, "_available_trackers", [LoggerType.WANDB])
    assert (
        main(["pretrain", "--config", str(_tiny_config(tmp_path, "a", report_to="[wandb]")), "--run_name", "lr-3"]) == 0
    )
    _reset()
    assert main(["pretrain", "--config", str(_tiny_config(tmp_path, "second", report_to="[wandb]"))]) == 0
    assert started == [{"project": "protconv", "name": "lr-3"}, {"project": "protconv", "name": "second"}]
    assert logged and set(logged) <= {0, 1, 2}


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    import accelerate.tracking

    from protconv.cli import main

    monkeypatch.setattr(accelerate.tracking, "_available_trackers", [])
    config = _tiny_config(tmp_path, "run")
    assert main(["pretrain", "--config", str(config), "--report_to", "tensorboard"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "protconv pretrain: error: --report_to tensorboard: not installed (pip install tensorboard)"
    ]


def test_the_progress_bar_is_closed_when_a_step_fails(tmp_path, monkeypatch) -> None:
    from protconv.pretraining import loop

    closed = []

    class Bar:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def close(self) -> None:
            closed.append(True)

    def fail(self, batch, window) -> bool:
        raise RuntimeError("a failing step")

    monkeypatch.setattr(loop, "tqdm", Bar)
    monkeypatch.setattr(loop._Run, "_micro_step", fail)
    with pytest.raises(RuntimeError, match="a failing step"):
        pretrain(*arguments(tmp_path / "run", eval_at_start=False))
    assert closed == [True]
