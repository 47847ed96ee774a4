"""Hub-ready folders: complete auto_map, code and tokenizer shipped, loadable where protconv is absent."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

import protconv
from protconv.hub import model_card, push_folder, save_hub_folder
from protconv.modeling.auto_classes import family_auto_map
from tests.helpers import python_without_protconv

SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MSLLTEVETPIRNEWGCRCNDSSD"]


@pytest.fixture
def saved_folder(tmp_path, tiny_conv_config, tokenizer):
    model = protconv.ConvForMaskedLM(tiny_conv_config).eval()
    folder = save_hub_folder(model, tokenizer, tmp_path / "model", card=model_card(model, "tiny", "A test model."))
    return model, folder


def test_folder_holds_weights_complete_auto_map_code_tokenizer_and_card(saved_folder) -> None:
    _, folder = saved_folder
    files = {path.name for path in folder.iterdir()}
    expected = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"}
    code = {
        "configuration_conv.py",
        "configuration_base.py",
        "modeling_conv.py",
        "auto_classes.py",
        "heads.py",
        "losses.py",
        "model_inputs.py",
        "outputs.py",
        "pooling.py",
        "task_models.py",
        "vocabulary.py",
    }
    assert expected | code <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == family_auto_map("Conv") and config["architectures"] == ["ConvForMaskedLM"]
    assert (folder / "README.md").read_text().startswith("---\nlibrary_name: transformers")
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".model.")], "staging folder left behind"


@pytest.mark.parametrize(
    ("auto_class", "model_class"),
    [
        (AutoModel, protconv.ConvModel),
        (AutoModelForPreTraining, protconv.ConvForPreTraining),
        (AutoModelForSequenceClassification, protconv.ConvForSequenceClassification),
        (AutoModelForTokenClassification, protconv.ConvForTokenClassification),
    ],
)
def test_every_auto_class_resolves_to_protconv(saved_folder, auto_class, model_class) -> None:
    _, folder = saved_folder
    assert isinstance(AutoConfig.from_pretrained(folder), protconv.ConvConfig)
    assert type(auto_class.from_pretrained(folder)) is model_class


def test_loads_with_trust_remote_code_where_protconv_is_absent(saved_folder, tmp_path, tokenizer) -> None:
    model, folder = saved_folder
    batch = tokenizer(SEQUENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
    torch.save(expected, tmp_path / "expected.pt")
    script = f"""
        import torch
        try:
            import protconv
            raise SystemExit("protconv is importable: the test would prove nothing")
        except ImportError:
            pass
        from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer
        folder = {str(folder)!r}
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        batch = tokenizer({SEQUENCES!r}, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        assert torch.equal(logits, expected), (logits - expected).abs().max()
        encoder = AutoModel.from_pretrained(folder, trust_remote_code=True)
        assert type(encoder).__name__ == "ConvModel"
        print("REMOTE-OK")
    """
    result = python_without_protconv(script, tmp_path)
    assert result.returncode == 0 and "REMOTE-OK" in result.stdout, result.stderr[-3000:]


def test_existing_folder_is_protected_and_failed_save_leaves_nothing(saved_folder, tokenizer) -> None:
    model, folder = saved_folder
    with pytest.raises(FileExistsError, match="not empty"):
        save_hub_folder(model, tokenizer, folder)

    class BrokenTokenizer:
        def save_pretrained(self, _path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_hub_folder(model, BrokenTokenizer(), folder, overwrite=True)
    assert (folder / "model.safetensors").is_file(), "the previous folder must survive a failed overwrite"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".model.")]


def test_push_folder_creates_repo_and_uploads(saved_folder, tmp_path) -> None:
    _, folder = saved_folder
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload", folder_path, repo_id))
            return "https://huggingface.co/org/tiny/commit/abc"

    assert push_folder(folder, "org/tiny", api=FakeApi()).endswith("/commit/abc")
    assert calls == [("create", "org/tiny", False, True), ("upload", str(folder), "org/tiny")]
    with pytest.raises(FileNotFoundError, match="not a saved model folder"):
        push_folder(tmp_path, "org/tiny", api=FakeApi())


def test_fill_mask_pipeline_works_on_a_saved_folder(saved_folder) -> None:
    from transformers import pipeline

    _, folder = saved_folder
    candidates = pipeline("fill-mask", model=str(folder))("MKTAYIAK<mask>QRQ", top_k=3)
    assert len(candidates) == 3
    assert all(len(c["sequence"]) == len("MKTAYIAKXQRQ") for c in candidates if len(c["token_str"]) == 1)
    assert candidates[0]["score"] >= candidates[1]["score"] >= candidates[2]["score"]
