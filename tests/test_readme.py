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
