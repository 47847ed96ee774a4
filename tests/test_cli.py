"""The command line: every user error is one line on stderr and exit code 2 (``--debug`` shows the traceback);
``push`` options and Hub failures; exported folders' permissions and the staging folders a killed export leaves.

Invocations run in-process (``protconv.cli.main``, the example scripts through ``runpy``); one runs as a real
process, to see exactly what a user sees; a kill during export is a forked child killing itself.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import protconv
from protconv import staging
from protconv.cli import main
from protconv.hub import save_hub_folder
from protconv.staging import remove_stale_staging
from tests.helpers import DATA

ROOT = Path(__file__).resolve().parents[1]
TINY = "hidden_size=32,intermediate_size=16,num_hidden_layers=4,max_dilation=4"
GB1 = str(DATA / "gb1_three_vs_rest_slice.csv")
#: Trainer options of a fast CPU run.
QUICK = ["--max_steps", "1", "--use_cpu", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """Inputs, good and bad, shared by the invocations below (none of them is modified by a test)."""
    root = tmp_path_factory.mktemp("cli")
    base = root / "base"
    config = protconv.ConvConfig(hidden_size=32, intermediate_size=16, num_hidden_layers=4, max_dilation=4)
    protconv.ConvForMaskedLM(config).save_pretrained(base)
    protconv.build_tokenizer().save_pretrained(base)
    taken = root / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("a user's file")
    no_weights = root / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    corrupt = root / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated zip, not a checkpoint" * 4)
    foreign = root / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    texts = {
        "empty.fasta": "",
        "empty.csv": "",
        "no_seq.csv": "protein,label\nMKTAYIAK,1.0\n",
        "no_label.csv": "sequence,value\nMKTAYIAK,1.0\n",
        "all_bad.csv": "sequence,label\nMKTAYIAK,\nMQYKLILN,nan\nMK1,0.5\n",
        "bad_row.csv": "sequence,label\nMKTAYIAK,0.5\nMQYKLILN,inf\n",
        "valid.csv": "sequence,label\nMKTAYIAKQR,0.1\nMQYKLILNGK,0.7\nMSLLTEVETP,0.3\n",
        "bad.yaml": "train_files: [a.fasta\nmax_steps: 1\n",
        "unknown.yaml": "train_files: [a.fasta]\nno_such_option: 1\n",
        "list.yaml": "- train_files\n",
        "bad.json": '{"task": "regression",',
        "list.json": "[1, 2]",
        "missing_key.json": '{"task": "regression"}',
        "not_fasta.fasta": "MKTAYIAK\n",
    }
    for name, text in texts.items():
        (root / name).write_text(text)
    return SimpleNamespace(
        root=root,
        base=base,
        taken=taken,
        no_weights=no_weights,
        corrupt=corrupt,
        foreign=foreign,
        **{name.replace(".", "_"): root / name for name in texts},
    )


def run(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(part) for part in argv])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, prefix: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_error_line(code: int, err: str, prefix: str, *fragments: str) -> None:
    """For runs that get as far as loading a model (transformers logs its load report on stderr): the error is
    still one line, the last, and there is no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert [line for line in lines if "error:" in line] == lines[-1:], err
    assert lines[-1].startswith(prefix) and all(fragment in lines[-1] for fragment in fragments), lines[-1]


# Each case: the command line ({placeholders} from the `files` fixture, split on spaces) and fragments of the one
# error line (led by its prefix when that is not "protconv <command>: error: ").
FT = "finetune --task regression --output_dir {root}/ft --train_file"
PT = "pretrain --model protconv_conv --config_overrides {tiny} --max_steps 1 --output_dir {root}/pt --disable_tqdm"
MALFORMED = {
    # top level
    "no-subcommand": ("", "protconv: error: ", "required: command"),
    "unknown-subcommand": ("fine-tune", "protconv: error: ", "invalid choice: 'fine-tune'"),
    # convert-carp
    "carp-missing-checkpoint": ("convert-carp {root}/none.pt {root}/out", "none.pt: no such file"),
    "carp-corrupt-checkpoint": ("convert-carp {corrupt} {root}/out", "corrupt.pt: not a readable PyTorch"),
    "carp-foreign-checkpoint": ("convert-carp {foreign} {root}/out", "expected a dict with 'model_state_dict'"),
    "carp-existing-output": ("convert-carp {corrupt} {taken}", "taken exists and is not empty; pass --overwrite"),
    "carp-checkpoint-is-a-folder": ("convert-carp {root} {root}/out", ": no such file"),
    "carp-output-is-a-file": ("convert-carp {corrupt} {bad_json}", "bad.json exists and is not a folder"),
    "carp-extra-argument": ("convert-carp {corrupt} {root}/out extra", "unrecognized arguments: extra"),
    "carp-missing-argument": ("convert-carp {corrupt}", "the following arguments are required: out_dir"),
    # push (each fails before the Hub is contacted)
    "push-folder-without-weights": ("push {no_weights} org/model", "is not a saved model folder"),
    "push-missing-folder": ("push {root}/nothing org/model", "nothing is not a saved model folder"),
    "push-unknown-flag": ("push {base} org/model --public", "unrecognized arguments: --public"),
    # finetune
    "finetune-missing-train-file": (f"{FT} {{root}}/none.csv", "none.csv: No such file or directory"),
    "finetune-bad-task": ("finetune --task regresion --train_file {gb1}", "invalid choice: 'regresion'"),
    "finetune-bad-int": (f"{FT} {{gb1}} --max_steps ten", "argument --max_steps/--max-steps: invalid int value"),
    "finetune-bad-bool": (f"{FT} {{gb1}} --use_cpu maybe", "--use_cpu", "got maybe"),
    "finetune-missing-required": ("finetune --task regression", "required: --train_file"),
    "finetune-empty-csv": (f"{FT} {{empty_csv}}", "empty.csv"),
    "finetune-no-sequence-column": (f"{FT} {{no_seq_csv}}", "no_seq.csv", "sequence"),
    "finetune-only-bad-rows": (f"{FT} {{all_bad_csv}}", "all_bad.csv: no usable training rows (3 bad rows skipped"),
    "finetune-bad-row-under-error": (
        f"{FT} {{bad_row_csv}} --on_bad_row error",
        "bad_row.csv:3: label 'inf' is not a finite number",
    ),
    "finetune-unknown-model": (f"{FT} {{gb1}} --model carp-6k", "--model 'carp-6k' is neither a preset"),
    "finetune-token-task-without-labels": (
        "finetune --task token-classification --train_file {data}/ss_sequences_slice.fasta --output_dir {root}/ft",
        "token-classification needs --labels_file",
    ),
    "finetune-bad-json-config": ("finetune {bad_json}", "bad.json: not valid JSON"),
    "finetune-json-config-not-a-mapping": ("finetune {list_json}", "list.json: expected a JSON object"),
    "finetune-json-config-missing-key": ("finetune {missing_key_json}", "missing_key.json:", "train_file"),
    "finetune-missing-json-config": ("finetune {root}/none.json", "none.json: No such file or directory"),
    # pretrain
    "pretrain-missing-fasta": (f"{PT} --train_files {{root}}/none.fasta", "none.fasta"),
    "pretrain-empty-fasta": (f"{PT} --train_files {{empty_fasta}}", "empty.fasta"),
    "pretrain-not-fasta": (f"{PT} --train_files {{not_fasta_fasta}}", "not_fasta.fasta:1"),
    "pretrain-bad-yaml": ("pretrain --config {bad_yaml}", "bad.yaml: line 2, column 10: invalid YAML"),
    "pretrain-yaml-unknown-key": ("pretrain --config {unknown_yaml}", "unknown arguments ['no_such_option']"),
    "pretrain-yaml-not-a-mapping": ("pretrain --config {list_yaml}", "list.yaml: expected a mapping"),
    "pretrain-missing-config": ("pretrain --config {root}/none.yaml", "none.yaml"),
    "pretrain-no-data": ("pretrain --output_dir {root}/pt", "no training data"),
    "pretrain-zero-steps": ("pretrain --train_files {gb1} --max_steps 0", "max_steps must be at least 1"),
    "pretrain-bad-choice": ("pretrain --train_files {gb1} --invalid_sequences drop", "invalid_sequences must be"),
    "pretrain-bad-float": ("pretrain --learning_rate fast", "invalid float value: 'fast'"),
    "pretrain-unknown-model": (
        "pretrain --train_files {data}/few_proteins.fasta --model carp-6k",
        "--model 'carp-6k' is neither a preset",
    ),
    # baseline
    "baseline-missing-file": ("baseline --task regression --train_file {root}/none.csv", "none.csv"),
    "baseline-no-label-column": ("baseline --task regression --train_file {no_label_csv}", "no_label.csv", "target"),
    "baseline-bad-choice": ("baseline --task regression --train_file {gb1} --on_bad_row ignore", "'ignore'"),
    "baseline-only-bad-rows": ("baseline --task regression --train_file {all_bad_csv}", "no usable training rows"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_invocation_is_one_line_and_exit_code_2(case, files, capsys) -> None:
    command, *fragments = MALFORMED[case]
    argv = command.format(**vars(files), gb1=GB1, data=DATA, tiny=TINY).split()
    prefix = fragments.pop(0) if fragments[0].startswith("protconv") else f"protconv {argv[0]}: error: "
    code, err = run(argv, capsys)
    assert_one_line_error(code, err, prefix, *fragments)


def test_at_least_25_malformed_invocations_over_all_five_subcommands() -> None:
    commands = {command.split()[0] for command, *_ in MALFORMED.values() if command}
    assert commands >= {"convert-carp", "push", "finetune", "pretrain", "baseline"}
    assert len(MALFORMED) >= 25


def test_debug_flag_and_environment_variable_show_the_traceback(files, capsys, monkeypatch) -> None:
    from protconv.conversion import CarpCheckpointError

    argv = ["convert-carp", str(files.root / "none.pt"), str(files.root / "out")]
    with pytest.raises(CarpCheckpointError, match=r"none\.pt: no such file"):
        main(["--debug", *argv])
    monkeypatch.setenv("PROTCONV_DEBUG", "1")
    with pytest.raises(CarpCheckpointError):
        main(argv)
    monkeypatch.setenv("PROTCONV_DEBUG", "0")
    assert main(argv) == 2


def test_help_exits_0(capsys) -> None:
    assert main(["--help"]) == 0
    assert "convert-carp" in capsys.readouterr().out
    assert main(["finetune", "--help"]) == 0
    assert "--train_file" in capsys.readouterr().out


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch, files) -> None:
    """Only user errors become one line: a programming error keeps its traceback (exit 1 from the shell)."""
    import protconv.cli as cli

    def broken(*args, **kwargs):
        raise TypeError("an internal bug")

    monkeypatch.setattr(cli, "push_folder", broken)
    with pytest.raises(TypeError, match="an internal bug"):
        main(["push", str(files.base), "org/model"])


@pytest.mark.parametrize(
    ("script", "argv", "prefix"),
    [
        ("finetune.py", ["--task", "regression", "--train_file", "{root}/none.csv"], "protconv finetune: error: "),
        ("pretrain.py", ["--config", "{bad_yaml}"], "protconv pretrain: error: "),
    ],
)
def test_example_scripts_report_errors_like_the_command(files, capsys, monkeypatch, script, argv, prefix) -> None:
    import runpy

    monkeypatch.setattr(sys, "argv", [script, *(part.format(**vars(files)) for part in argv)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "examples" / script), run_name="__main__")
    assert_one_line_error(exit_.value.code, capsys.readouterr().err, prefix)


def test_a_real_process_prints_one_line_and_exit_code_2(files) -> None:
    """What a user sees: the example script run by Python, no traceback, exit status 2."""
    env = {key: value for key, value in os.environ.items() if key != "PROTCONV_DEBUG"}
    missing = str(files.root / "none.csv")
    command = [sys.executable, str(ROOT / "examples" / "finetune.py"), "--task", "regression", "--train_file", missing]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=files.root, timeout=300)
    assert (result.returncode, result.stderr) == (
        2,
        f"protconv finetune: error: {missing}: No such file or directory\n",
    )


def test_non_finite_training_loss_is_one_line_and_no_model(files, tmp_path, capsys, monkeypatch) -> None:
    from protconv.downstream.task_data import TaskDataset

    getitem = TaskDataset.__getitem__
    monkeypatch.setattr(TaskDataset, "__getitem__", lambda self, i: {**getitem(self, i), "labels": float("nan")})
    argv = f"finetune --model {files.base} --task regression --train_file {files.valid_csv} --output_dir {tmp_path}"
    code, err = run([*argv.split(), *QUICK], capsys)
    assert_error_line(code, err, "protconv finetune: error: ", "training loss is nan at step 1")
    assert not (tmp_path / "model").exists()


def test_skipped_rows_are_reported_on_the_command_line(files, tmp_path, capsys, caplog) -> None:
    argv = f"finetune --model {files.base} --task regression --train_file {files.bad_row_csv} --validation_file "
    argv += f"{files.valid_csv} --output_dir {tmp_path}"
    with caplog.at_level("WARNING", logger="protconv.downstream.task_data"):
        assert run([*argv.split(), *QUICK], capsys)[0] == 0
    assert f"{files.bad_row_csv}:3: label 'inf' is not a finite number" in caplog.text
    assert "skipped 1 bad row (train: 1)" in caplog.text


# ---------------------------------------------------------------- push


class FakeApi:
    """Stands in for ``huggingface_hub.HfApi``: records calls; ``fail`` is raised by ``create_repo``."""

    instances: list[FakeApi] = []
    fail: BaseException | None = None

    def __init__(self, token=None):
        self.token, self.calls = token, []
        FakeApi.instances.append(self)

    def create_repo(self, repo_id, private, exist_ok):
        self.calls.append(("create_repo", repo_id, private, exist_ok))
        if FakeApi.fail is not None:
            raise FakeApi.fail

    def create_branch(self, repo_id, branch, exist_ok):
        self.calls.append(("create_branch", repo_id, branch, exist_ok))

    def create_commit(self, repo_id, operations, **kwargs):
        files = sorted(operation.path_in_repo for operation in operations)
        self.calls.append(("create_commit", repo_id, files, kwargs))
        pr = "https://huggingface.co/org/model/discussions/1" if kwargs.get("create_pr") else None
        return SimpleNamespace(commit_url="https://huggingface.co/org/model/commit/abc", pr_url=pr)


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeApi.instances, FakeApi.fail = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def test_push_options_reach_the_hub(files, fake_hub, capsys) -> None:
    argv = ["push", files.base, "org/model", "--token", "hf_x", "--revision", "v2", "--commit_message", "first"]
    assert run(argv, capsys)[0] == 0
    (api,) = fake_hub.instances
    assert api.token == "hf_x"
    files_uploaded = sorted(path.name for path in Path(files.base).iterdir())
    commit = {"commit_message": "first", "commit_description": None, "revision": "v2", "create_pr": False}
    assert api.calls == [
        ("create_repo", "org/model", False, True),
        ("create_branch", "org/model", "v2", True),
        ("create_commit", "org/model", files_uploaded, commit),
    ]
    capsys.readouterr()
    assert main(["push", str(files.base), "org/model", "--create_pr", "--private"]) == 0
    assert capsys.readouterr().out.strip() == "https://huggingface.co/org/model/discussions/1"
    calls = fake_hub.instances[-1].calls
    assert calls[0] == ("create_repo", "org/model", True, True)
    commit = {
        "commit_message": "Upload protconv model",
        "commit_description": None,
        "revision": None,
        "create_pr": True,
    }
    assert calls[1] == ("create_commit", "org/model", files_uploaded, commit)


def _http_error(status: int):
    from huggingface_hub.errors import HfHubHTTPError

    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return HfHubHTTPError(
        f"{status} Client Error\nfor url https://huggingface.co/api/repos/create",
        response=response,
        server_message="Invalid credentials in Authorization header",
    )


def _connect_error():
    """The HTTP client's connection error (httpx, or requests for older huggingface_hub), as raised offline."""
    error_class = type("ConnectError", (Exception,), {"__module__": "httpx"})
    return error_class("[Errno -2] Name or service not known\n  (very long\n  chained detail)")


@pytest.mark.parametrize(
    ("make_error", "fragments"),
    [
        (_connect_error, ["the Hugging Face Hub cannot be reached (ConnectError: [Errno -2] Name or service"]),
        (lambda: ConnectionError("Network is unreachable"), ["cannot be reached", "Network is unreachable"]),
        (lambda: _http_error(401), ["HTTP 401, not authorised (Invalid credentials", "--token"]),
        (lambda: _http_error(500), ["HTTP 500 (Invalid credentials"]),
    ],
    ids=["offline", "os-connection-error", "unauthorised", "server-error"],
)
def test_push_failures_are_one_line_naming_the_repo_and_the_cause(files, fake_hub, capsys, make_error, fragments):
    fake_hub.fail = make_error()
    code, err = run(["push", files.base, "org/model"], capsys)
    assert_one_line_error(
        code, err, "protconv push: error: ", f"could not push {files.base} to org/model: ", *fragments
    )


# ---------------------------------------------------------------- exported folders (hub.save_hub_folder)


@pytest.fixture
def tiny_model(tiny_conv_config):
    return protconv.ConvForMaskedLM(tiny_conv_config)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002], ids=oct)
def test_exported_folder_gets_ordinary_permissions(tiny_model, tokenizer, tmp_path, umask) -> None:
    """The staging folder used to come from tempfile.mkdtemp, so the model folder ended up 0700."""
    previous = os.umask(umask)
    try:
        folder = save_hub_folder(tiny_model, tokenizer, tmp_path / "model")
        overwritten = save_hub_folder(tiny_model, tokenizer, tmp_path / "model", overwrite=True)
    finally:
        os.umask(previous)
    for path in (folder, overwritten):
        assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((folder / "config.json").stat().st_mode) == 0o666 & ~umask


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leftover(parent: Path, name: str, *files: str, age_s: float = 0.0) -> Path:
    path = parent / name
    path.mkdir()
    for file in files:
        (path / file).parent.mkdir(parents=True, exist_ok=True)
        (path / file).write_text("partial")
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path


def test_stale_staging_folders_are_removed_and_live_ones_kept(tiny_model, tokenizer, tmp_path) -> None:
    host, dead, alive, day = staging._host(), _dead_pid(), os.getpid(), staging.STALE_AFTER_SECONDS
    stale = [
        _leftover(tmp_path, f".model.{host}.{dead}.0a1b2c3d", "config.json"),
        _leftover(tmp_path, f".model.old.{host}.{dead}.0a1b2c3d", "model/config.json"),
        _leftover(tmp_path, ".model.other-node.12.0a1b2c3d", "config.json", age_s=day + 60),
        _leftover(tmp_path, ".model.k3j_x9a2", "config.json", "model.safetensors", age_s=day + 60),  # mkdtemp name
    ]
    kept = [
        _leftover(tmp_path, f".model.{host}.{alive}.0a1b2c3d", "config.json"),  # a concurrent writer
        _leftover(tmp_path, ".model.other-node.12.ffffffff", "config.json"),  # another host, recent
        _leftover(tmp_path, ".model.k3j_x9a3", "config.json"),  # recent: may be an older protconv running now
        _leftover(tmp_path, ".model.snapshot", "config.json", age_s=day + 60),  # a user's folder
        _leftover(tmp_path, ".model.a1b2c3d4", "notes.docx", age_s=day + 60),  # not an export's content
        _leftover(tmp_path, f".other.{host}.{dead}.0a1b2c3d", "config.json"),  # another target's
    ]
    # overwrite: the dead writer's backup held a "model" folder, which is put back first (next test)
    save_hub_folder(tiny_model, tokenizer, tmp_path / "model", overwrite=True)
    assert not [path for path in stale if path.exists()]
    assert all(path.is_dir() for path in kept)
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_a_lost_swap_puts_the_previous_folder_back(tiny_model, tokenizer, tmp_path) -> None:
    """Killed between moving the old folder aside and moving the new one in: the old one is restored."""
    previous = save_hub_folder(tiny_model, tokenizer, tmp_path / "model")
    backup = tmp_path / f".model.old.{staging._host()}.{_dead_pid()}.0a1b2c3d"
    backup.mkdir()
    os.replace(previous, backup / "model")
    assert remove_stale_staging(tmp_path / "model") == [backup]
    assert (tmp_path / "model" / "model.safetensors").is_file() and not backup.exists()
    with pytest.raises(FileExistsError, match="not empty"):
        save_hub_folder(tiny_model, tokenizer, tmp_path / "model")


def test_an_export_killed_midway_leaves_nothing_after_the_next(tiny_model, tokenizer, tmp_path) -> None:
    class KilledWhileSaving:
        def save_pretrained(self, path, **_options):
            (Path(path) / "config.json").write_text("{}")
            os.kill(os.getpid(), signal.SIGKILL)

    child = os.fork()
    if child == 0:  # only Python file operations happen in the child before it is killed
        try:
            save_hub_folder(KilledWhileSaving(), tokenizer, tmp_path / "model")
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    (leftover,) = [path for path in tmp_path.iterdir() if path.name.startswith(".model.")]
    assert (leftover / "config.json").is_file(), "the killed export had written part of its folder"
    save_hub_folder(tiny_model, tokenizer, tmp_path / "model")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_type"] == "protconv_conv"


def test_version_is_the_installed_distributions(capsys) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"protconv {version('protconv')}\n"
    assert protconv.__version__ == version("protconv"), "pyproject.toml and protconv.__version__ disagree"
