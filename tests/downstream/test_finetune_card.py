"""The fine-tuned card records the training arguments and an intended use for its head; --push_to_hub publishes
OUTPUT/model, never OUTPUT/."""

from __future__ import annotations

from transformers import TrainingArguments

import protconv
from protconv.downstream.finetune_arguments import FinetuneArguments
from protconv.downstream.report import _card, take_hub_push
from tests.helpers import DATA


def test_card_records_training_arguments_and_head_use(tmp_path) -> None:
    args = FinetuneArguments(model="carp-600k", task="regression", train_file=str(DATA / "gb1_three_vs_rest_slice.csv"))
    training = TrainingArguments(output_dir=str(tmp_path / "run"), learning_rate=3e-4, num_train_epochs=4,
                                 per_device_train_batch_size=8, gradient_accumulation_steps=2, seed=7)  # fmt: skip
    config = protconv.ConvConfig(hidden_size=16, intermediate_size=8, num_hidden_layers=2, max_dilation=2, num_labels=1)
    card = str(_card(protconv.ConvForSequenceClassification(config), args, {"test": {"spearman": 0.5}}, training))
    rows = ["| mode | full |", "| learning rate | 0.0003 |", "| epochs | 4 |", "| batch size | 16 per device |"]
    for expected in [*rows, "| seed | 7 |", "one predicted value per protein"]:
        assert expected in card, expected
    assert "masked-residue prediction" not in card and str(DATA) not in card and "tests/data" not in card


def test_push_to_hub_is_taken_from_trainer(tmp_path) -> None:
    training = TrainingArguments(output_dir=str(tmp_path / "gb1-run"), push_to_hub=True)
    assert take_hub_push(training) == "gb1-run" and training.push_to_hub is False, "Trainer must not push OUTPUT/"
    named = TrainingArguments(output_dir=str(tmp_path / "x"), push_to_hub=True, hub_model_id="org/gb1")
    assert take_hub_push(named) == "org/gb1"
    assert take_hub_push(TrainingArguments(output_dir=str(tmp_path / "y"))) is None


def test_finetune_push_to_hub_uploads_output_model_only(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from huggingface_hub import HfApi

    from protconv.downstream.finetune import finetune

    base = tmp_path / "base"
    config = protconv.ConvConfig(hidden_size=16, intermediate_size=8, num_hidden_layers=2, max_dilation=2)
    protconv.ConvForMaskedLM(config).save_pretrained(base)
    protconv.build_tokenizer().save_pretrained(base)
    uploaded: dict[str, list[str]] = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **_: None)

    def create_commit(self, repo_id, operations, **_):
        uploaded[repo_id] = [op.path_in_repo for op in operations]
        assert all(
            Path(str(op.path_or_fileobj)).parent.name == "model" for op in operations if op.path_in_repo != "README.md"
        )
        return "https://huggingface.co/org/gb1/commit/1"

    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    args = FinetuneArguments(model=str(base), task="regression", train_file=str(DATA / "gb1_three_vs_rest_slice.csv"))
    training = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=8,
                                 use_cpu=True, report_to=[], disable_tqdm=True, push_to_hub=True,
                                 hub_model_id="org/gb1", save_strategy="no")  # fmt: skip
    finetune(args, training)
    files = set(uploaded["org/gb1"])
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "modeling_conv.py"} <= files
    assert not any(name.endswith(".log") or name.startswith(("checkpoint", "finetune_results")) for name in files)
