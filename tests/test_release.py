"""``protconv release`` end to end on CARP-format random checkpoints, with the Hub upload intercepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi

from protconv import release as release_module
from protconv.cli import main as cli_main
from protconv.release import RELEASED_CHECKPOINTS
from tests.helpers import DATA
from tests.test_conversion import reference_model, write_checkpoint

TINY = {"d_embed": 8, "d_model": 16, "n_layers": 2, "kernel_size": 5, "activation": "gelu", "slim": True, "r": 2}


@pytest.fixture(scope="module")
def carp_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("carp")
    torch.manual_seed(0)
    for stem in RELEASED_CHECKPOINTS:
        write_checkpoint(folder / f"{stem}.pt", reference_model(TINY), TINY)
    return folder


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "suite.yaml"
    entry = {"name": "blat", "kind": "zero-shot", "proteingym": str(DATA / "proteingym")}
    path.write_text(yaml.safe_dump([entry]))
    return path


class Uploads:
    """HfApi's create_repo and create_commit, recorded per repository instead of sent."""

    def __init__(self, monkeypatch) -> None:
        self.repos: list[str] = []
        self.files: dict[str, dict[str, bytes]] = {}
        monkeypatch.setattr(HfApi, "create_repo", self.create_repo)
        monkeypatch.setattr(HfApi, "create_commit", self.create_commit)

    def create_repo(self, repo_id, **_):
        self.repos.append(repo_id)

    def create_commit(self, repo_id, operations, **_):
        self.files[repo_id] = {
            op.path_in_repo: op.path_or_fileobj
            if isinstance(op.path_or_fileobj, bytes)
            else Path(op.path_or_fileobj).read_bytes()
            for op in operations
        }
        return f"https://huggingface.co/{repo_id}/commit/1"


def _release(carp_dir: Path, out: Path, suite: Path, *extra: str) -> int:
    arguments = ["release", str(carp_dir), "--organization", "org", "--output_dir", str(out), "--suite", str(suite)]
    return cli_main([*arguments, "--bootstrap", "2", *extra])


def test_dry_run_then_release_publishes_four_carded_repos(carp_dir, suite, tmp_path, monkeypatch, capsys) -> None:
    uploads = Uploads(monkeypatch)
    out = tmp_path / "release"
    assert _release(carp_dir, out, suite, "--dry_run") == 0
    assert uploads.repos == [] and uploads.files == {}, "a dry run uploads nothing"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("carp-")) == sorted(RELEASED_CHECKPOINTS.values())

    assert _release(carp_dir, out, suite, "--overwrite") == 0, capsys.readouterr().err
    expected = [f"org/{name}" for name in RELEASED_CHECKPOINTS.values()]
    assert uploads.repos == expected
    for repo_id in expected:
        files = uploads.files[repo_id]
        assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "modeling_conv.py"} <= set(files)
        card = files["README.md"].decode()
        metadata = yaml.safe_load(card.split("---")[1])
        assert metadata["license"] == "mit" and metadata["pipeline_tag"] == "fill-mask"
        results = metadata["model-index"][0]["results"]
        assert {r["task"]["type"] for r in results} == {"zero-shot-fitness-prediction"}
        assert any(m["type"] == "spearman" for r in results for m in r["metrics"])
        assert f'from_pretrained("{repo_id}")' in card and "6564798" in card and "yang2024convolutions" in card
        assert str(tmp_path) not in card and str(carp_dir) not in card and "/tmp" not in card
    summary = json.loads((out / "release.json").read_text())
    assert all(m["passed"] and m["parity_max_abs_diff"] < 1e-5 and m["url"] for m in summary)


def test_missing_extra_or_damaged_checkpoint_is_refused_before_any_conversion(
    carp_dir, suite, tmp_path, capsys
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for stem in list(RELEASED_CHECKPOINTS)[:3]:
        (bad / f"{stem}.pt").write_bytes((carp_dir / f"{stem}.pt").read_bytes())
    assert _release(bad, tmp_path / "out1", suite) == 2
    assert "missing carp_640M.pt" in capsys.readouterr().err
    (bad / "carp_640M.pt").write_bytes(b"not a checkpoint")
    (bad / "carp_extra.pt").write_bytes((carp_dir / "carp_600k.pt").read_bytes())
    assert _release(bad, tmp_path / "out2", suite) == 2
    assert "unexpected carp_extra.pt" in capsys.readouterr().err
    (bad / "carp_extra.pt").unlink()
    assert _release(bad, tmp_path / "out3", suite) == 2
    error = capsys.readouterr().err
    assert "carp_640M.pt: not a readable PyTorch checkpoint" in error and len(error.splitlines()) == 1
    assert not any(path.exists() for path in (tmp_path / "out1", tmp_path / "out2", tmp_path / "out3")), "converted"


def test_parity_failure_stops_that_model_only(carp_dir, suite, tmp_path, monkeypatch, capsys) -> None:
    uploads = Uploads(monkeypatch)
    honest = release_module.reference_logits

    def off_for_38m(checkpoint: Path, sequences):
        logits = honest(checkpoint, sequences)
        return [x + 1e-3 for x in logits] if checkpoint.stem == "carp_38M" else logits

    monkeypatch.setattr(release_module, "reference_logits", off_for_38m)
    assert _release(carp_dir, tmp_path / "out", suite) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("protconv release: error: parity with sequence_models failed for carp_38M (max")
    assert uploads.repos == ["org/carp-600k", "org/carp-76m", "org/carp-640m"]
