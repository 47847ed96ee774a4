"""Checkpoints that cannot execute code, one run per output folder, and resume that never loses or mixes state."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from protconv.file_guards import LOCK_FILE, OutputDirInUseError, OutputDirLock
from protconv.pretraining import CheckpointError, pretrain
from protconv.pretraining.checkpoints import STATE_FILE, read_checkpoint
from tests.helpers import DATA
from tests.pretraining.test_loop import arguments, profile_arguments
from tests.pretraining.test_pipeline import local_datasets  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _reset() -> None:
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


class _Payload:
    """Unpickling this runs ``os.system``: it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _payload(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, tuple]:
    """A run stopped at step 4 with checkpoints at steps 2 and 4 (built once; tests copy it)."""
    root = tmp_path_factory.mktemp("run")
    args = arguments(root / "run", stop_after_steps=4, eval_at_start=False, save_total_limit=5)
    pretrain(*args)
    _reset()
    return root / "run", args


def _copy(finished_run, tmp_path: Path) -> tuple[Path, tuple]:
    source, (model_args, data_args, train_args) = finished_run
    target = tmp_path / "run"
    shutil.copytree(source, target)
    (target / LOCK_FILE).unlink(missing_ok=True)
    return target, (model_args, data_args, replace(train_args, output_dir=str(target)))


def test_checkpoint_holds_only_safetensors_and_json(finished_run) -> None:
    checkpoint = finished_run[0] / "checkpoints" / "checkpoint-00000004"
    names = sorted(path.name for path in checkpoint.iterdir())
    assert all(name.endswith((".safetensors", ".json")) for name in names), names
    manifest = json.loads((checkpoint / STATE_FILE).read_text())["files"]
    assert set(manifest) == set(names) - {STATE_FILE}


@pytest.mark.parametrize(
    "name",
    ["model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json", "rng_state_0.safetensors"],
)
def test_a_payload_in_any_checkpoint_file_never_runs(finished_run, tmp_path, name) -> None:
    run, _ = _copy(finished_run, tmp_path)
    marker = tmp_path / "executed"
    checkpoint = run / "checkpoints" / "checkpoint-00000004"
    (checkpoint / name).write_bytes(_payload(marker))
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        read_checkpoint(checkpoint, rank=0)
    assert not marker.exists()


def test_resume_ignores_accelerate_pickles_and_never_unpickles(finished_run, tmp_path) -> None:
    """accelerate's own file names, each carrying a payload, next to protconv's files: a full resume succeeds
    and nothing runs."""
    run, (model_args, data_args, train_args) = _copy(finished_run, tmp_path)
    marker = tmp_path / "executed"
    checkpoint = run / "checkpoints" / "checkpoint-00000004"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin", "scheduler.bin", "scaler.pt"):
        (checkpoint / name).write_bytes(_payload(marker))
    result = pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=6))
    assert result.step == 6
    assert not marker.exists()


def test_truncated_rng_state_is_an_error_not_silence(finished_run, tmp_path) -> None:
    run, (model_args, data_args, train_args) = _copy(finished_run, tmp_path)
    rng = run / "checkpoints" / "checkpoint-00000004" / "rng_state_0.safetensors"
    rng.write_bytes(rng.read_bytes()[:-10])
    resume_from = str(rng.parent)
    with pytest.raises(CheckpointError, match=r"rng_state_0\.safetensors has \d+ bytes"):
        pretrain(model_args, data_args, replace(train_args, resume_from=resume_from, stop_after_steps=6))


def test_corrupt_newest_checkpoint_falls_back_to_the_older_one_exactly(finished_run, tmp_path, capsys) -> None:
    run, (model_args, data_args, train_args) = _copy(finished_run, tmp_path)
    uninterrupted = tmp_path / "uninterrupted"
    pretrain(model_args, data_args, replace(train_args, output_dir=str(uninterrupted), stop_after_steps=None))
    _reset()
    newest = run / "checkpoints" / "checkpoint-00000004"
    (newest / "optimizer.json").write_text('{"param_groups": [', encoding="utf-8")
    result = pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=None))
    assert "falling back to checkpoint-00000002" in capsys.readouterr().err  # a warning, on the console
    assert "WARNING protconv.pretraining.loop:" in (run / "protconv.log").read_text()  # and in the run's log
    assert result.step == 6
    expected = load_file(uninterrupted / "model" / "model.safetensors")
    resumed = load_file(run / "model" / "model.safetensors")
    assert all(torch.equal(expected[key], resumed[key]) for key in expected)


def test_flipped_bytes_inside_the_newest_weights_fall_back_to_the_older_checkpoint(
    finished_run, tmp_path, caplog
) -> None:
    run, (model_args, data_args, train_args) = _copy(finished_run, tmp_path)
    weights = run / "checkpoints" / "checkpoint-00000004" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])  # same size, same header
    weights.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        result = pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=6))
    assert result.step == 6
    warned = " ".join(record.getMessage() for record in caplog.records if record.levelname == "WARNING")
    assert "model.safetensors does not match the SHA-256" in warned
    assert "falling back to checkpoint-00000002" in warned


def test_records_appended_after_the_checkpoint_refuse_the_resume(tmp_path) -> None:
    fasta = tmp_path / "train.fasta"
    shutil.copyfile(DATA / "some_proteins.fasta", fasta)
    model_args, data_args, train_args = arguments(tmp_path / "run", stop_after_steps=2, eval_at_start=False)
    data_args = replace(data_args, train_files=[str(fasta)])
    pretrain(model_args, data_args, train_args)
    _reset()
    with fasta.open("a") as handle:
        handle.write(">appended\nMKTAYIAKQRQISFVKSHFSRQ\n")
    with pytest.raises(CheckpointError, match=rf"the train file {re.escape(str(fasta))} is not the one"):
        pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=4))


def test_an_edited_msa_refuses_the_resume(tmp_path) -> None:
    msa = tmp_path / "msa"
    msa.mkdir()
    shutil.copyfile(DATA / "msa" / "UniRef50_E9K9Y4.a3m", msa / "family.a3m")
    model_args, data_args, train_args = profile_arguments(tmp_path / "run", "mlm+profile", stop_after_steps=2,
                                                          eval_at_start=False)  # fmt: skip
    data_args = replace(data_args, msa_files=[str(msa)], validation_fraction=0.0)
    pretrain(model_args, data_args, train_args)
    _reset()
    first_record = (msa / "family.a3m").read_text().splitlines()[:2]
    with (msa / "family.a3m").open("a") as handle:
        handle.write("\n".join([">added member", first_record[1]]) + "\n")
    pattern = rf"the train file {re.escape(str(msa / 'family.a3m'))} is not the one"
    with pytest.raises(CheckpointError, match=pattern):
        pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=4))


@pytest.mark.usefixtures("local_datasets")  # offline datasets with their cache under tmp_path
def test_rows_appended_to_a_dataset_refuse_the_resume(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "proteins"
    folder.mkdir()
    sequences = ["MKTAYIAKQRQISFVKSHFSRQ", "MADNVLMAYHIVHDPDERAK", "QQRSLLKKWWEEAAGG"] * 10
    pq.write_table(pa.table({"sequence": sequences}), folder / "train.parquet")
    model_args, data_args, train_args = arguments(tmp_path / "run", stop_after_steps=2, eval_at_start=False)
    data_args = replace(data_args, train_files=[], dataset_name=str(folder), validation_fraction=0.0)
    pretrain(model_args, data_args, train_args)
    _reset()
    pq.write_table(pa.table({"sequence": [*sequences, "MKTAYIAKQR"]}), folder / "train.parquet")
    with pytest.raises(CheckpointError, match=rf"the train dataset {re.escape(str(folder))} \(train\) is not the"):
        pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=4))


def test_a_dataset_digest_is_the_values_not_their_chunking() -> None:
    import pyarrow as pa

    from protconv.data.datasets_corpus import column_digest

    one = pa.chunked_array([["MKT", "AY", None, "QQ"]])
    assert column_digest(one) == column_digest(pa.chunked_array([["MKT"], ["AY", ""], ["QQ"]]))
    assert column_digest(one) == column_digest(pa.chunked_array([["x", "MKT", "AY", None, "QQ"]])[1:])
    assert column_digest(one) != column_digest(pa.chunked_array([["MKT", "AYQ", "", "Q"]]))
    assert column_digest(one) != column_digest(pa.chunked_array([["MKT", "AY", "", "QR"]]))


def test_torn_metrics_line_does_not_block_resume(finished_run, tmp_path) -> None:
    run, (model_args, data_args, train_args) = _copy(finished_run, tmp_path)
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 5, "split": "tra')  # killed mid-write
    pretrain(model_args, data_args, replace(train_args, resume=True, stop_after_steps=6))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 6


def test_changed_training_arguments_on_resume_are_refused(finished_run, tmp_path) -> None:
    _, (model_args, data_args, train_args) = _copy(finished_run, tmp_path)
    with pytest.raises(CheckpointError, match=r"learning_rate: 0\.003 -> 0\.01"):
        pretrain(model_args, data_args, replace(train_args, resume=True, learning_rate=0.01))
    _reset()
    result = pretrain(model_args, data_args, replace(train_args, resume=True, logging_steps=2, stop_after_steps=5))
    assert result.step == 5


def test_a_run_in_a_locked_folder_is_refused(tmp_path) -> None:
    model_args, data_args, train_args = arguments(tmp_path / "run", stop_after_steps=1, eval_at_start=False)
    other = OutputDirLock(tmp_path / "run")
    other.acquire()
    try:
        with pytest.raises(OutputDirInUseError, match=rf"in use by another run \(pid {os.getpid()}"):
            pretrain(model_args, data_args, train_args)
    finally:
        other.release()
    _reset()
    assert pretrain(model_args, data_args, train_args).step == 1


def test_a_killed_run_releases_its_lock(tmp_path) -> None:
    script = (
        "import sys, time; from pathlib import Path; from protconv.pretraining.output_dir import OutputDirLock; "
        "OutputDirLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(OutputDirInUseError):
            OutputDirLock(tmp_path).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    lock = OutputDirLock(tmp_path)
    deadline = time.monotonic() + 5
    while True:
        try:
            lock.acquire()
            break
        except OutputDirInUseError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    lock.release()


@pytest.mark.parametrize("leftover", ["model", "metrics.jsonl"])
def test_an_earlier_run_is_never_replaced_or_appended_to_unless_asked(tmp_path, leftover) -> None:
    model_args, data_args, train_args = arguments(tmp_path / "run", stop_after_steps=1, eval_at_start=False)
    previous = tmp_path / "run" / leftover
    previous.parent.mkdir(parents=True)
    if leftover == "model":
        previous.mkdir()
    else:
        previous.write_text('{"step": 1, "split": "train", "loss": 9.0}\n')
    with pytest.raises(FileExistsError, match=rf"already holds a run \({leftover}\).*--overwrite_output_dir"):
        pretrain(model_args, data_args, train_args)
    _reset()
    pretrain(model_args, data_args, replace(train_args, overwrite_output_dir=True))
    if leftover == "metrics.jsonl":
        assert "9.0" not in previous.read_text()


def test_a_run_that_fails_before_writing_leaves_no_folder_behind(tmp_path) -> None:
    model_args, data_args, train_args = arguments(tmp_path / "never", stop_after_steps=1)
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(ValueError):
        pretrain(model_args, replace(data_args, train_files=[str(empty)]), train_args)
    assert not (tmp_path / "never").exists()
