"""Hub-ready folders: weights, config, tokenizer and card written atomically; pushing; pipelines.

That the shipped code is complete and loads through every Auto class where protconv is absent is part of the
contract of every model family: tests/modeling/test_contract.py.
"""

from __future__ import annotations

import json

import pytest

import protconv
from protconv.hub import model_card, push_folder, save_hub_folder


@pytest.fixture
def saved_folder(tmp_path, tiny_conv_config, tokenizer):
    model = protconv.ConvForMaskedLM(tiny_conv_config).eval()
    folder = save_hub_folder(model, tokenizer, tmp_path / "model", card=model_card(model, "tiny", "A test model."))
    return model, folder


def test_folder_holds_weights_config_tokenizer_and_card(saved_folder) -> None:
    _, folder = saved_folder
    files = {path.name for path in folder.iterdir()}
    expected = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"}
    assert expected <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["ConvForMaskedLM"]
    assert (folder / "README.md").read_text().startswith("---\nlibrary_name: transformers")
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".model.")], "staging folder left behind"


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
