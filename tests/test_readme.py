"""The README's Python examples run as written (in a scratch directory)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]


def test_readme_example_runs(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    example = python_blocks()[0]
    exec(compile(example, str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "predicted residue:" in out and "torch.Size([2, 128])" in out


def test_readme_profile_example_runs(monkeypatch, capsys) -> None:
    monkeypatch.chdir(README.parent)
    (example,) = [block for block in python_blocks() if "compute_profile" in block]
    exec(compile(example, str(README), "exec"), {"__name__": "__readme__"})
    assert "(431, 20) Neff" in capsys.readouterr().out


def test_readme_profile_config_parses() -> None:
    from protconv.pretraining import parse_arguments

    model_args, data_args, _ = parse_arguments(
        ["--config", str(README.parent / "examples/configs/profile-multitask.yaml")]
    )
    assert model_args.pretraining_objective == "mlm+profile" and data_args.msa_files == ["../shared/data/msa"]


def test_readme_command_line_examples_run(tmp_path, monkeypatch, capsys) -> None:
    """The embed / score / finetune / predict block, line by line through ``protconv.cli.main``, in a scratch
    folder that sees the repository's ``tests/data`` and holds the ``my-carp`` folder of the first example."""
    import shlex

    from protconv.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tests").symlink_to(README.parent / "tests")
    exec(compile(python_blocks()[0], str(README), "exec"), {"__name__": "__readme__"})
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", README.read_text(), re.DOTALL) if "protconv embed" in b]
    commands = [line for line in block.replace("\\\n", " ").splitlines() if line.startswith("protconv ")]
    assert [c.split()[1] for c in commands] == ["embed", "score", "finetune", "predict"]
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    assert (tmp_path / "embeddings.h5").is_file() and (tmp_path / "predictions.csv").is_file()
    assert "spearman" in capsys.readouterr().out.lower()
