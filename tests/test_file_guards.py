"""file_guards: an output may never be an input, and one run at a time writes a result file."""

from __future__ import annotations

import os

import pytest

from protconv.file_guards import (
    OutputFileInUseError,
    OutputFileLock,
    OutputIsInputError,
    check_outputs_are_not_inputs,
    lock_file_of,
)
from protconv.pretraining.output_dir import OutputDirInUseError, OutputDirLock


def test_an_output_that_is_an_input_is_refused_by_path_and_by_identity(tmp_path, monkeypatch) -> None:
    data = tmp_path / "x.fasta"
    data.write_text(">a\nMKV\n")
    monkeypatch.chdir(tmp_path)
    link, hard = tmp_path / "link.fasta", tmp_path / "hard.fasta"
    link.symlink_to(data)
    os.link(data, hard)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    for output, inputs in [
        ("./x.fasta", ["x.fasta"]),
        (link, [data]),
        (hard, [data]),
        (data, [None, link]),
        (folder / "config.json", [data, folder]),
    ]:
        with pytest.raises(OutputIsInputError, match="would overwrite the input file") as caught:
            check_outputs_are_not_inputs([output], inputs)
        assert "--overwrite" not in str(caught.value)
    check_outputs_are_not_inputs([tmp_path / "out.h5", None], [data, folder, "some/hub-id"])
    assert data.read_text() == ">a\nMKV\n"


def test_a_second_run_is_refused_naming_the_holder_and_the_lock_file_goes_at_release(tmp_path) -> None:
    output = tmp_path / "out.h5"
    with OutputFileLock(output):
        assert lock_file_of(output).exists()
        with pytest.raises(OutputFileInUseError, match=rf"another run \(pid {os.getpid()} on .*command: "):
            OutputFileLock(output).acquire()
    assert not lock_file_of(output).exists()
    with OutputFileLock(output):  # free again
        pass


def test_output_dir_lock_shares_the_core_and_keeps_its_message(tmp_path) -> None:
    lock = OutputDirLock(tmp_path / "run")
    lock.acquire()
    try:
        with pytest.raises(OutputDirInUseError, match=r"in use by another run \(pid .*command: .*--output_dir"):
            OutputDirLock(tmp_path / "run").acquire()
    finally:
        lock.release()
    assert not (tmp_path / "run").exists()
