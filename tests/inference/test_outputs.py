"""What embed/score/predict may write and keep: outputs that are inputs, locks, resumed records that changed,
damaged files, nucleotide input, duplicate ids and spreadsheet-safe CSV cells (issue 21)."""

from __future__ import annotations

import csv
import logging

import h5py
import numpy as np
import pytest

import protconv
from protconv.file_guards import OutputFileInUseError, OutputFileLock, lock_file_of
from protconv.inference import InferenceInputError, embed, predict
from protconv.inference.embed import EmbeddingFileError

from .conftest import save_model, write_fasta

PROTEINS = [("p1", "MKVLAAGIVG"), ("p2", "MSTNPKPQRK"), ("p3", "MDEFGHIKLM")]


@pytest.fixture
def fasta(tmp_path):
    return write_fasta(tmp_path / "in.fasta", PROTEINS)


def test_embed_refuses_to_write_over_its_fasta_even_with_overwrite(conv_folder, fasta, tmp_path) -> None:
    before = fasta.read_bytes()
    link = tmp_path / "link.fasta"
    link.symlink_to(fasta)
    for output in (fasta, link):
        with pytest.raises(InferenceInputError, match="would overwrite the input file") as caught:
            embed(conv_folder, fasta, output, overwrite=True, progress=False)
        assert "--overwrite" not in str(caught.value)
    with pytest.raises(InferenceInputError, match="inside"):
        embed(conv_folder, fasta, conv_folder / "config.json", overwrite=True, progress=False)
    assert fasta.read_bytes() == before


def test_a_second_run_on_the_same_output_is_refused_overwrite_included(conv_folder, fasta, tmp_path) -> None:
    output = tmp_path / "out.h5"
    with OutputFileLock(output), pytest.raises(OutputFileInUseError, match="another run"):
        embed(conv_folder, fasta, output, overwrite=True, progress=False)
    assert not output.exists()
    embed(conv_folder, fasta, output, progress=False)
    assert not lock_file_of(output).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_changed_sequence_is_refused_or_recomputed(conv_folder, fasta, tmp_path) -> None:
    output = tmp_path / "out.h5"
    embed(conv_folder, fasta, output, progress=False)
    edited = write_fasta(tmp_path / "edited.fasta", [PROTEINS[0], ("p2", "MSTNPKPQRA"), PROTEINS[2]])
    with pytest.raises(EmbeddingFileError, match=r"record 'p2' computed from another sequence than .*edited.fasta:3"):
        embed(conv_folder, edited, output, progress=False)
    result = embed(conv_folder, edited, output, recompute_changed=True, progress=False)
    assert (result.written, result.skipped) == (1, 2)
    fresh = tmp_path / "fresh.h5"
    embed(conv_folder, edited, fresh, progress=False)
    with h5py.File(output) as got, h5py.File(fresh) as want:
        np.testing.assert_allclose(got["p2/mean"][()], want["p2/mean"][()], atol=1e-5)  # batches differ


def test_records_missing_from_the_fasta_are_reported_and_dropped_on_request(conv_folder, fasta, tmp_path, caplog):
    output = tmp_path / "out.h5"
    embed(conv_folder, fasta, output, progress=False)
    fewer = write_fasta(tmp_path / "fewer.fasta", PROTEINS[:1])
    with caplog.at_level(logging.WARNING):
        assert embed(conv_folder, fewer, output, progress=False).skipped == 1
    assert "2 records are not in" in caplog.text and "'p2', 'p3'" in caplog.text
    with h5py.File(output) as store:
        assert sorted(store) == ["ids", "p1", "p2", "p3"]
    embed(conv_folder, fewer, output, drop_missing=True, progress=False)
    with h5py.File(output) as store:
        assert sorted(store) == ["ids", "p1"]


def test_a_file_without_sequence_hashes_is_refused(conv_folder, fasta, tmp_path) -> None:
    output = tmp_path / "out.h5"
    embed(conv_folder, fasta, output, progress=False)
    with h5py.File(output, "a") as store:
        del store.attrs["sequence_hash"]  # as the old code wrote it
    with pytest.raises(EmbeddingFileError, match="no sequence hashes"):
        embed(conv_folder, fasta, output, progress=False)


def test_a_truncated_file_is_reported_as_damaged(conv_folder, fasta, tmp_path) -> None:
    output = tmp_path / "out.h5"
    embed(conv_folder, fasta, output, progress=False)
    data = output.read_bytes()
    output.write_bytes(data[: len(data) // 2])
    with pytest.raises(EmbeddingFileError, match="damaged") as caught:
        embed(conv_folder, fasta, output, progress=False)
    assert "another process" not in str(caught.value)


def test_nucleotide_input_gets_the_warning(conv_folder, tmp_path, caplog) -> None:
    dna = write_fasta(tmp_path / "dna.fasta", [(f"g{i}", "ACGTTGCAACGTAGCTAGCTAGGA") for i in range(3)])
    with caplog.at_level(logging.WARNING):
        embed(conv_folder, dna, tmp_path / "out.h5", progress=False)
    assert "looks like a nucleotide FASTA" in caplog.text


def test_duplicate_ids_error_skip_or_rename(conv_folder, tmp_path) -> None:
    twice = write_fasta(tmp_path / "twice.fasta", [*PROTEINS, ("p1", "MMMMMMMM")])
    with pytest.raises(InferenceInputError, match="repeats the id"):
        embed(conv_folder, twice, tmp_path / "a.h5", progress=False)
    assert embed(conv_folder, twice, tmp_path / "s.h5", duplicate_ids="skip", progress=False).records == 3
    assert embed(conv_folder, twice, tmp_path / "r.h5", duplicate_ids="rename", progress=False).written == 4
    with h5py.File(tmp_path / "r.h5") as store:
        assert sorted(store) == ["ids", "p1", "p1#2", "p2", "p3"] and store["p1#2"].attrs["length"] == 8
    with pytest.raises(InferenceInputError, match="duplicate_ids must be"):
        embed(conv_folder, twice, tmp_path / "x.h5", duplicate_ids="first", progress=False)  # type: ignore[arg-type]


def test_predict_writes_formula_like_ids_as_text(tmp_path, tiny_conv_config) -> None:
    tiny_conv_config.num_labels = 1
    tiny_conv_config.problem_type = "regression"
    folder = save_model(protconv.ConvForSequenceClassification(tiny_conv_config), tmp_path / "regression")
    ids = ["=cmd|'/c_calc'!A1", "+1", "-2", "@SUM(A1)", "ok"]
    source = write_fasta(tmp_path / "in.fasta", [(name, "MKVLAAG") for name in ids])
    predict(folder, source, tmp_path / "out.csv", progress=False)
    with open(tmp_path / "out.csv", newline="") as handle:
        got = [row["id"] for row in csv.DictReader(handle)]
    assert got == ["'" + name for name in ids[:4]] + ["ok"]
    from protconv.inference.predict import spreadsheet_safe

    assert spreadsheet_safe("\tx") == "'\tx" and spreadsheet_safe("a=b") == "a=b"
    with pytest.raises(InferenceInputError, match="would overwrite the input file"):
        predict(folder, source, folder / "model.safetensors", progress=False)


def test_score_refuses_the_wild_type_file_or_the_spearman_file_as_output_and_locks(conv_folder, tmp_path) -> None:
    from protconv.inference import score

    wildtype = write_fasta(tmp_path / "wt.fasta", [("wt", "MKTAYIAKQR")])
    variants = tmp_path / "v.csv"
    variants.write_text("mutant,measured\nK2A,1\nT3A,2\nWT,0\n")
    with pytest.raises(InferenceInputError, match="would overwrite the input file"):
        score(conv_folder, variants, wildtype, wildtype=wildtype, progress=False)
    assert wildtype.read_text().startswith(">wt")
    table = tmp_path / "t.spearman.json"  # a CSV table whose name is the Spearman file of output t.csv
    table.write_text(variants.read_text())
    with pytest.raises(InferenceInputError, match="would overwrite the input file"):
        score(conv_folder, table, tmp_path / "t.csv", wildtype=wildtype, score_column="measured", progress=False)
    output = tmp_path / "out.csv"
    with OutputFileLock(output), pytest.raises(OutputFileInUseError, match="another run"):
        score(conv_folder, variants, output, wildtype=wildtype, progress=False)
    assert score(conv_folder, variants, output, wildtype=wildtype, progress=False).output == output
