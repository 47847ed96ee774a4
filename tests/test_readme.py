"""The README's Python examples run as written (in a scratch directory)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_readme_profile_config_parses(monkeypatch) -> None:
    from protconv.pretraining import parse_arguments

    monkeypatch.chdir(README.parent)
    model_args, data_args, _ = parse_arguments(["--config", "examples/configs/profile-multitask.yaml"])
    assert model_args.pretraining_objective == "mlm+profile" and all(Path(f).is_file() for f in data_args.msa_files)


#: A ```bash block whose first line starts with this names what it needs beyond a clone (a Hub account, GPUs, a
#: UniRef download): it is shown, not run. Every other command of the README runs in the test below.
NEEDS = "# needs:"


def bash_commands() -> list[str]:
    """Every command of the runnable ```bash blocks, continuation lines joined, comments dropped; the first block
    (``make demo`` / ``make test``) is the front door, run by CI itself."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)[1:]
    commands = []
    for block in blocks:
        if block.startswith(NEEDS):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


#: The one folder every README command writes into; .gitignore covers it.
SCRATCH = "scratch"


def git(folder: Path, *arguments: str) -> str:
    done = subprocess.run(["git", *arguments], cwd=folder, capture_output=True, text=True, check=True)
    return done.stdout


def committed(clone: Path) -> None:
    """Make the copy a repository with everything committed, so that ``git status`` shows what the commands add
    or change (the copy keeps the checkout's ``.gitignore``)."""
    git(clone, "init", "-q")
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=readme", "-c", "user.email=readme@test", "commit", "-q", "-m", "clone")


def fresh_clone(target: Path) -> Path:
    """The files a clone of this checkout would hold (tracked, plus new files git does not ignore), and nothing
    else: no ``../shared``, no ``runs/``, no ``.venv``."""
    root = README.parent
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = root / name
        if source.is_file():  # deleted but not yet committed files are listed too
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.skipif(not (README.parent / ".git").exists(), reason="needs a git checkout to know what a clone holds")
def test_readme_commands_run_from_a_fresh_clone(tmp_path) -> None:
    """The README's Python example (it saves ``scratch/my-carp``), then every command of its runnable bash
    blocks, in order, each as its own process, in a copy of what a clone holds; after them, ``git status`` in
    that copy shows nothing: every output went under ``scratch/``."""
    clone = fresh_clone(tmp_path / "clone")
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    environment.update(HF_HUB_OFFLINE="1", TQDM_DISABLE="1", PYTHONWARNINGS="ignore")

    def run(command: list[str] | str) -> str:
        done = subprocess.run(
            command,
            shell=isinstance(command, str),
            executable="/bin/bash" if isinstance(command, str) else None,
            cwd=clone,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    committed(clone)
    run([sys.executable, "-c", python_blocks()[0]])
    commands = bash_commands()
    assert any(c.startswith("protconv embed") for c in commands) and any("pretrain" in c for c in commands)
    output = "".join(run(command) for command in commands)
    assert (clone / SCRATCH / "embeddings.h5").is_file() and (clone / SCRATCH / "predictions.csv").is_file()
    left = git(clone, "status", "--porcelain", "--untracked-files=all")
    assert left == "", f"README commands must write under {SCRATCH}/ only (ignored by git); they left:\n{left}"
    assert "spearman" in output.lower()
    shown = re.search(r"```yaml\n(---\n.*?\n---)\n```", README.read_text(), flags=re.DOTALL).group(1)
    assert_same_metadata(shown, (clone / HUB_EXAMPLE_CARD).read_text())


#: The card whose metadata the README's Hub section shows (written by the fine-tuning command above it).
HUB_EXAMPLE_CARD = "scratch/ft-gb1/model/README.md"


def assert_same_metadata(shown: str, written: str) -> None:
    """The front matter shown in the README is the one protconv writes, up to the measured metric values."""
    from huggingface_hub import ModelCard

    def metadata(text: str) -> dict:
        data = ModelCard(text).data.to_dict()
        for entry in data.get("model-index", []):
            for result in entry["results"]:
                for metric in result["metrics"]:
                    assert isinstance(metric.pop("value"), float)
        return data

    assert metadata(shown + "\n") == metadata(written)
