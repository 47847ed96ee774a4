"""Hub-ready folders: weights, config, tokenizer and card written atomically; pushing; pipelines.

That the shipped code is complete and loads through every Auto class where protconv is absent is part of the
contract of every model family: tests/modeling/test_contract.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import protconv
from protconv.hub import push_folder, save_hub_folder
from protconv.model_card import build_card


@pytest.fixture
def saved_folder(tmp_path, tiny_conv_config, tokenizer):
    model = protconv.ConvForMaskedLM(tiny_conv_config).eval()
    folder = save_hub_folder(model, tokenizer, tmp_path / "model", card=build_card(model, "tiny", "A test model."))
    return model, folder


def test_folder_holds_weights_config_tokenizer_and_card(saved_folder) -> None:
    _, folder = saved_folder
    files = {path.name for path in folder.iterdir()}
    expected = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"}
    assert expected <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["ConvForMaskedLM"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card
    # the usage code names the folder (by name only: tmp_path is absolute, and no local path enters a card)
    assert 'from_pretrained("model")' in card and str(folder.parent) not in card
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


class FakeHubApi:
    """The three calls ``push_folder`` makes, recorded; the uploaded files are read at commit time."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.files: dict[str, bytes] = {}

    def create_repo(self, repo_id, private, exist_ok):
        self.calls.append(("create", repo_id, private, exist_ok))

    def create_branch(self, repo_id, branch, exist_ok):
        self.calls.append(("branch", repo_id, branch))

    def create_commit(self, repo_id, operations, commit_message, commit_description, revision, create_pr):
        self.calls.append(("commit", repo_id, commit_message, revision, create_pr))
        for operation in operations:
            content = operation.path_or_fileobj
            self.files[operation.path_in_repo] = content if isinstance(content, bytes) else Path(content).read_bytes()
        return "https://huggingface.co/org/tiny/commit/abc"


def test_push_folder_uploads_one_commit_with_the_card_pointing_at_the_repo(saved_folder, tmp_path) -> None:
    _, folder = saved_folder
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("x")
    api = FakeHubApi()
    assert push_folder(folder, "org/tiny", api=api).endswith("/commit/abc")
    assert api.calls == [
        ("create", "org/tiny", False, True),
        ("commit", "org/tiny", "Upload protconv model", None, False),
    ]
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= set(api.files)
    assert not any(name.startswith(".") for name in api.files)
    uploaded = api.files["README.md"].decode()
    assert 'from_pretrained("org/tiny")' in uploaded and 'from_pretrained("model")' not in uploaded
    assert 'from_pretrained("model")' in (folder / "README.md").read_text(), "the local folder is not modified"
    assert api.files["model.safetensors"] == (folder / "model.safetensors").read_bytes()

    api = FakeHubApi()
    push_folder(folder, "org/tiny", api=api, revision="v2", create_pr=False, commit_message="m")
    assert ("branch", "org/tiny", "v2") in api.calls and api.calls[-1] == ("commit", "org/tiny", "m", "v2", False)
    with pytest.raises(FileNotFoundError, match="not a saved model folder"):
        push_folder(tmp_path / "empty", "org/tiny", api=FakeHubApi())


def test_model_push_to_hub_uploads_protconv_card_and_tokenizer(saved_folder, monkeypatch) -> None:
    """transformers' push_to_hub would upload its generic card and no tokenizer."""
    import huggingface_hub

    _, folder = saved_folder
    api = FakeHubApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: api)
    reloaded = protconv.ConvForMaskedLM.from_pretrained(folder)
    reloaded.push_to_hub("org/tiny-copy", commit_message="copy")
    assert {"tokenizer.json", "tokenizer_config.json", "model.safetensors", "README.md"} <= set(api.files)
    card = api.files["README.md"].decode()
    assert "# tiny" in card and 'from_pretrained("org/tiny-copy")' in card, "the source folder's card, retargeted"
    assert ("commit", "org/tiny-copy", "copy", None, False) in api.calls

    api.files.clear()
    protconv.PerformerForSequenceClassification(protconv.PerformerConfig.from_preset("performer-small")).push_to_hub(
        "org/fresh"
    )
    assert "pipeline_tag: text-classification" in api.files["README.md"].decode()
    assert "tokenizer.json" in api.files


def test_fill_mask_pipeline_works_on_a_saved_folder(saved_folder) -> None:
    from transformers import pipeline

    _, folder = saved_folder
    candidates = pipeline("fill-mask", model=str(folder))("MKTAYIAK<mask>QRQ", top_k=3)
    assert len(candidates) == 3
    assert all(len(c["sequence"]) == len("MKTAYIAKXQRQ") for c in candidates if len(c["token_str"]) == 1)
    assert candidates[0]["score"] >= candidates[1]["score"] >= candidates[2]["score"]


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("---\npipeline_tag:\n- fill-mask\n- feature-extraction\n---\n# m\n", "pipeline_tag must be one string"),
        ("---\nlicense: [mit\n---\n# m\n", "not valid YAML"),
        ("---\n- a list\n---\n# m\n", "must be a YAML mapping"),
        (b"---\nlicense: mit\n---\nCaf\xe9 model\n", r"not UTF-8 text \(line 4"),
    ],
)
def test_push_checks_the_card_before_creating_the_repository(saved_folder, card, message) -> None:
    _, folder = saved_folder
    readme = folder / "README.md"
    readme.write_bytes(card.encode() if isinstance(card, str) else card)
    api = FakeHubApi()
    with pytest.raises(ValueError, match=message) as error:
        push_folder(folder, "org/tiny", api=api)
    assert str(readme) in str(error.value)
    assert api.calls == [], "nothing may be created on the Hub for a folder that cannot be pushed"


def test_push_refuses_a_link_leading_outside_the_folder(saved_folder, tmp_path) -> None:
    _, folder = saved_folder
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    (folder / "notes.txt").symlink_to(secret)
    api = FakeHubApi()
    with pytest.raises(ValueError, match=r"notes\.txt is a symbolic link to .*secret\.txt, outside") as error:
        push_folder(folder, "org/tiny", api=api)
    assert api.calls == [] and "token" not in str(error.value)
    (folder / "notes.txt").unlink()
    (folder / "data").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match="data is a symbolic link"):
        push_folder(folder, "org/tiny", api=api)
    (folder / "data").unlink()
    (folder / "vocab.txt").symlink_to(folder / "config.json")  # inside the folder: uploaded as a file
    push_folder(folder, "org/tiny", api=api)
    assert api.files["vocab.txt"] == (folder / "config.json").read_bytes()


def test_push_command_names_the_bad_card_in_one_line(saved_folder, capsys) -> None:
    from protconv.cli import main

    _, folder = saved_folder
    (folder / "README.md").write_text("---\npipeline_tag: [fill-mask]\n---\n")
    assert main(["push", str(folder), "org/tiny"]) != 0
    err = capsys.readouterr().err
    assert "pipeline_tag must be one string" in err and "Traceback" not in err


def test_save_pretrained_push_to_hub_uploads_protconv_card_and_tokenizer(saved_folder, tmp_path, monkeypatch) -> None:
    import huggingface_hub

    _, folder = saved_folder
    api = FakeHubApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: api)
    reloaded = protconv.ConvForMaskedLM.from_pretrained(folder)
    reloaded.save_pretrained(tmp_path / "local-copy", push_to_hub=True, commit_message="saved")
    assert (tmp_path / "local-copy" / "model.safetensors").is_file(), "saved locally too"
    assert {"tokenizer.json", "model.safetensors", "README.md"} <= set(api.files)
    card = api.files["README.md"].decode()
    assert "# tiny" in card and 'from_pretrained("local-copy")' in card
    assert ("commit", "local-copy", "saved", None, False) in api.calls
