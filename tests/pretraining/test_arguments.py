"""Pretraining arguments from a YAML config: paths relative to the config file, values checked against each field's
type (one error line naming the file and the field), the shipped example configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from protconv.cli import main
from protconv.pretraining import parse_arguments
from protconv.pretraining.arguments import PATH_OPTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_paths_in_a_config_are_relative_to_its_folder_and_command_line_paths_to_the_cwd(tmp_path, monkeypatch) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "configs").mkdir(parents=True)
    (project / "models" / "base").mkdir(parents=True)
    (project / "models" / "base" / "config.json").write_text("{}")
    (project / "clusters.tsv").write_text("a\tA\n")
    elsewhere.mkdir()
    (project / "configs" / "run.yaml").write_text(
        "model: ../models/base\n"
        "train_files: [../data/a.fasta, /abs/b.fasta]\nvalidation_files: [../data/v.fasta]\n"
        "msa_files: [../msa]\nvalidation_msa_files: [../msa_val]\ncluster_file: ../clusters.tsv\n"
        "data_cache_dir: ../cache\nprofile_cache_dir: ../profiles\noutput_dir: ../runs/one\n"
        "resume_from: ../runs/one/checkpoints/checkpoint-00000002\ndataset_name: org/proteins\n"
    )
    monkeypatch.chdir(elsewhere)
    model_args, data_args, train_args = parse_arguments(
        ["--config", "../project/configs/run.yaml", "--validation_files", "mine.fasta"]
    )
    resolved = {
        "model": model_args.model,
        "train_files": data_args.train_files[0],
        "msa_files": data_args.msa_files[0],
        "validation_msa_files": data_args.validation_msa_files[0],
        "cluster_file": data_args.cluster_file,
        "data_cache_dir": data_args.data_cache_dir,
        "profile_cache_dir": data_args.profile_cache_dir,
        "output_dir": train_args.output_dir,
        "resume_from": train_args.resume_from,
    }
    expected = {
        "model": "models/base",
        "train_files": "data/a.fasta",
        "msa_files": "msa",
        "validation_msa_files": "msa_val",
        "cluster_file": "clusters.tsv",
        "data_cache_dir": "cache",
        "profile_cache_dir": "profiles",
        "output_dir": "runs/one",
        "resume_from": "runs/one/checkpoints/checkpoint-00000002",
    }
    assert {name: (Path.cwd() / path).resolve() for name, path in resolved.items()} == {
        name: (project / path).resolve() for name, path in expected.items()
    }
    assert resolved["train_files"] == "../project/data/a.fasta"  # as a command line from this cwd would spell it
    assert data_args.train_files[1] == "/abs/b.fasta"
    assert data_args.validation_files == ["mine.fasta"]  # the command line: relative to the working directory
    assert data_args.dataset_name == "org/proteins"  # no such local folder: a Hub name, left as it is
    assert set(resolved) | {"validation_files", "dataset_name"} >= PATH_OPTIONS


def test_a_preset_name_is_not_taken_for_a_path(tmp_path) -> None:
    (tmp_path / "run.yaml").write_text("model: carp-600k\ntrain_files: [a.fasta]\n")
    model_args, _, _ = parse_arguments(["--config", str(tmp_path / "run.yaml")])
    assert model_args.model == "carp-600k"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples" / "configs").glob("*.yaml")))
def test_example_configs_name_the_same_files_from_any_working_directory(name, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _, data_args, train_args = parse_arguments(["--config", str(ROOT / "examples" / "configs" / name)])
    sources = [Path(path) for path in [*data_args.train_files, *data_args.msa_files]]
    assert sources and all(path.is_absolute() for path in sources)
    for path in sources:  # in the repository, or in the team's data folder beside it
        assert path.resolve().is_relative_to(ROOT) or path.resolve().is_relative_to(ROOT.parent / "shared")
        assert path.exists() or not path.resolve().is_relative_to(ROOT), path
    assert Path(train_args.output_dir).resolve() == ROOT / "runs" / name.removesuffix(".yaml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("learning_rate: abc", "learning_rate: expected a number, got 'abc'"),
        ("max_steps: 1.5", "max_steps: expected an integer, got 1.5"),
        ("max_validation_sequences: None", "max_validation_sequences: 'None' is a string in YAML; write null"),
        ("resume_from: None", "resume_from: 'None' is a string in YAML"),
        ("add_cls: 'no'", "add_cls: expected true or false, got 'no'"),
        ("warmup_steps: true", "warmup_steps: expected an integer, got True"),
        ("train_files: [1]", "train_files: expected a string, got 1 (quote it)"),
        ("report_to: {wandb: 1}", "report_to: expected a list of strings"),
    ],
)
def test_a_config_value_of_the_wrong_type_is_one_line_naming_file_and_field(tmp_path, capsys, text, fragment) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"train_files: [a.fasta]\n{text}\n")
    assert main(["pretrain", "--config", str(config)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"protconv pretrain: error: {config}: {fragment}"), lines


def test_config_values_are_read_as_the_command_line_would_read_them(tmp_path) -> None:
    """YAML reads 1e-3 as a string (1.0e-3 is its float): it must still be a learning rate; null is None."""
    config = tmp_path / "run.yaml"
    config.write_text(
        "train_files: a.fasta\nlearning_rate: 1e-3\nweight_decay: 0\nmax_steps: '20'\n"
        "max_validation_sequences: null\nlog_level: warning\nrun_name: lr-1e-3\n"
    )
    _, data_args, train_args = parse_arguments(["--config", str(config)])
    assert data_args.train_files == [str(tmp_path / "a.fasta")]  # one file needs no brackets
    assert (train_args.learning_rate, train_args.weight_decay, train_args.max_steps) == (0.001, 0.0, 20)
    assert data_args.max_validation_sequences is None
    assert (train_args.log_level, train_args.run_name) == ("warning", "lr-1e-3")
    with pytest.raises(ValueError, match="log_level must be one of debug, info, warning, error, critical"):
        parse_arguments(["--config", str(config), "--log_level", "loud"])
