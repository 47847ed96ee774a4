"""Bad inputs to embed/score/predict: one clear error (a ValueError or OSError subclass) naming the file, line,
record or position, raised before any output is written."""

from __future__ import annotations

import gzip
import signal

import pytest

import protconv
from protconv.data.fasta import DataFileError
from protconv.inference import InferenceInputError, embed, predict, score
from protconv.inference.common import deferred_interrupts

from .conftest import FASTA, save_model, write_fasta

BINARY = bytes(range(128, 256)) * 4  # no line break: the bad byte is on line 3


@pytest.fixture
def regression_folder(tmp_path, tiny_conv_config):
    tiny_conv_config.num_labels = 1
    return save_model(protconv.ConvForSequenceClassification(tiny_conv_config), tmp_path / "regression")


def test_empty_and_binary_fasta(conv_folder, regression_folder, tmp_path) -> None:
    empty = tmp_path / "empty.fasta"
    empty.write_text("\n\n")
    with pytest.raises(InferenceInputError, match=r"empty.fasta: no FASTA records"):
        embed(conv_folder, empty, tmp_path / "out.h5", progress=False)
    with pytest.raises(InferenceInputError, match=r"empty.fasta: empty file"):
        predict(regression_folder, empty, tmp_path / "out.csv", progress=False)
    binary = tmp_path / "binary.fasta"
    binary.write_bytes(b">x\nMKV\n" + BINARY)
    with pytest.raises(DataFileError, match=r"binary.fasta:3: byte 0x80 .* is not UTF-8 text"):
        embed(conv_folder, binary, tmp_path / "out.h5", progress=False)
    with pytest.raises(DataFileError, match=r"binary.fasta:3: byte 0x80"):
        predict(regression_folder, binary, tmp_path / "out.csv", progress=False)
    text_first = tmp_path / "headless.fasta"
    text_first.write_text("MKV\n>x\nMKV\n")
    with pytest.raises(DataFileError, match=r"headless.fasta:1: sequence data before the first '>' header"):
        embed(conv_folder, text_first, tmp_path / "out.h5", progress=False)
    empty_record = write_fasta(tmp_path / "hollow.fasta", [("a", "MKV"), ("b", "")])
    with pytest.raises(protconv.InvalidSequenceError, match=r"hollow.fasta:3 \(>b\): empty sequence"):
        embed(conv_folder, empty_record, tmp_path / "out.h5", progress=False)
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "out.csv").exists()


def test_gzip_fasta_is_read(conv_folder, tmp_path) -> None:
    packed = tmp_path / "proteins.fa.gz"
    packed.write_bytes(gzip.compress(FASTA.read_bytes()))
    assert embed(conv_folder, packed, tmp_path / "out.h5", progress=False).written == 15


def test_missing_files_and_folders(conv_folder, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        embed(conv_folder, tmp_path / "absent.fasta", tmp_path / "out.h5", progress=False)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        embed(tmp_path / "no_model", FASTA, tmp_path / "out.h5", progress=False)
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        embed(tmp_path / "empty_model", FASTA, tmp_path / "out.h5", progress=False)
    with pytest.raises(IsADirectoryError):
        embed(conv_folder, tmp_path, tmp_path / "out.h5", progress=False)
    with pytest.raises(IsADirectoryError):
        embed(conv_folder, FASTA, tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        embed(conv_folder, FASTA, tmp_path / "missing" / "out.h5", progress=False)
    variants = tmp_path / "v.csv"
    variants.write_text("mutant\nM1A\n")
    with pytest.raises(FileNotFoundError, match="no such file"):
        score(conv_folder, variants, tmp_path / "out.csv", wildtype=tmp_path / "wt.fasta", progress=False)
    with pytest.raises(FileNotFoundError, match="no such file"):
        score(conv_folder, tmp_path / "absent.csv", tmp_path / "out.csv", sequence="MKV", progress=False)


def test_binary_and_header_only_variant_files(conv_folder, tmp_path) -> None:
    binary = tmp_path / "v.csv"
    binary.write_bytes(b"mutant\nM1A\n" + BINARY)
    # every table problem, its bytes included, is the command's own input error (data/tables.py: one rule)
    with pytest.raises(InferenceInputError, match=r"v.csv:3: byte 0x80"):
        score(conv_folder, binary, tmp_path / "out.csv", sequence="MKV", progress=False)
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(InferenceInputError, match="empty file"):
        score(conv_folder, blank, tmp_path / "out.csv", sequence="MKV", progress=False)
    with pytest.raises(protconv.InvalidSequenceError, match=r"the wild-type sequence: character '1'"):
        score(conv_folder, tmp_path / "blank.csv", tmp_path / "out.csv", sequence="MK1V", progress=False)


def test_bad_options(conv_folder, tmp_path) -> None:
    with pytest.raises(InferenceInputError, match="max_tokens_per_batch must be positive"):
        embed(conv_folder, FASTA, tmp_path / "out.h5", max_tokens_per_batch=0, progress=False)
    with pytest.raises(InferenceInputError, match="dtype must be one of"):
        embed(conv_folder, FASTA, tmp_path / "out.h5", dtype="float64", progress=False)
    with pytest.raises(InferenceInputError, match="include: choose among"):
        embed(conv_folder, FASTA, tmp_path / "out.h5", include="mean,pooled", progress=False)
    with pytest.raises(InferenceInputError, match="unknown device"):
        embed(conv_folder, FASTA, tmp_path / "out.h5", device="gpu7", progress=False)


def test_a_model_without_the_needed_head_is_refused(tmp_path, tiny_conv_config) -> None:
    """A profile-only pretraining checkpoint has no lm_head: scoring with a random one would be silent garbage."""
    tiny_conv_config.pretraining_objective = "profile"
    folder = save_model(protconv.ConvForPreTraining(tiny_conv_config), tmp_path / "profile_only")
    variants = tmp_path / "v.csv"
    variants.write_text("mutant\nM1A\n")
    with pytest.raises(InferenceInputError, match=r"lacks weights .*lm_head.*needs a masked-LM head"):
        score(folder, variants, tmp_path / "out.csv", sequence="MKV", progress=False)
    assert embed(folder, FASTA, tmp_path / "out.h5", progress=False).written == 15  # its encoder is complete


def test_signals_wait_for_the_end_of_a_commit() -> None:
    # A process started in the background by a non-interactive shell inherits SIGINT ignored: give the test the
    # interactive default, which deferred_interrupts must hand back (it restores whatever handler it found).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        steps = []
        with pytest.raises(KeyboardInterrupt), deferred_interrupts():
            signal.raise_signal(signal.SIGINT)
            steps.append("finished the commit")
        assert steps == ["finished the commit"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_embed_and_predict_check_dtype_and_device_when_they_open_the_model(
    conv_folder, regression_folder, tmp_path
) -> None:
    """Both open the model session (source, dtype, device, config, tokenizer) before they read their input."""
    empty = tmp_path / "empty.fasta"
    empty.write_text("\n\n")
    with pytest.raises(InferenceInputError, match=r"unknown device 'bogus'"):
        embed(conv_folder, empty, tmp_path / "out.h5", device="bogus", progress=False)
    with pytest.raises(InferenceInputError, match=r"unknown device 'bogus'"):
        predict(regression_folder, empty, tmp_path / "out.csv", device="bogus", progress=False)
    with pytest.raises(InferenceInputError, match=r"dtype must be one of float32, bfloat16, float16"):
        predict(regression_folder, empty, tmp_path / "out.csv", dtype="float64", progress=False)
