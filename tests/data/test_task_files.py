"""Downstream task loaders on real slices (tests/data), their splits, bad-row handling and token alignment."""

from __future__ import annotations

from pathlib import Path

import pytest

from protconv.data.task_files import TaskDataError, read_csv_task, read_residue_task
from protconv.downstream.task_data import TaskCollator, TaskDataset
from tests.helpers import DATA

SS = (DATA / "ss_sequences_slice.fasta", DATA / "ss_labels_slice.fasta", DATA / "ss_mask_slice.fasta")


def test_flip_csv_splits_are_disjoint_and_complete() -> None:
    path = DATA / "gb1_three_vs_rest_slice.csv"
    sizes = {split: len(read_csv_task(path, split=split)) for split in ("train", "valid", "test")}
    assert sizes == {"train": 120, "valid": 30, "test": 50}
    train = read_csv_task(path, split="train")
    assert all(len(s) == 265 for s in train.sequences) and isinstance(train.labels[0], float)


def test_tape_csv_with_integer_labels() -> None:
    data = read_csv_task(DATA / "remote_homology_slice.csv", label_kind="int")
    assert len(data) == 80 and all(isinstance(label, int) for label in data.labels)
    with pytest.raises(TaskDataError, match="needs a FLIP 'set' column"):
        read_csv_task(DATA / "remote_homology_slice.csv", split="train")


def test_bad_rows_are_reported_with_line_and_skipped_or_rejected(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("seq,label\nMKT,1.0\nMKV,\n,2.0\nMK1,3.0\nMKW,abc\nMKY,4.5\n")
    data = read_csv_task(path, on_bad_row="skip")
    assert data.sequences == ["MKT", "MKY"] and data.labels == [1.0, 4.5]
    assert [m.split(": ", 1)[0] for m in data.skipped] == [f"{path}:{n}" for n in (3, 4, 5, 6)]
    assert "missing label" in data.skipped[0] and "empty sequence" in data.skipped[1]
    assert "'1' at position 3" in data.skipped[2] and "'abc' is not a valid float" in data.skipped[3]
    with pytest.raises(TaskDataError, match=r"bad\.csv:3: missing label"):
        read_csv_task(path, on_bad_row="error")
    with pytest.raises(TaskDataError, match="no column 'sequence' or 'seq'"):
        read_csv_task(_write(tmp_path / "cols.csv", "protein,label\nMK,1\n"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_residue_task_splits_classes_and_mask() -> None:
    splits = {split: read_residue_task(*SS, classes="CHE", split=split)[0] for split in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [24, 8, 8]
    data = splits["train"]
    for sequence, labels in zip(data.sequences, data.labels, strict=True):
        assert len(labels) == len(sequence)
        assert set(labels) <= {-100, 0, 1, 2}
    assert any(-100 in labels for labels in data.labels), "mask.fasta zeros must become -100"


def test_residue_length_mismatch_is_reported(tmp_path) -> None:
    seqs = _write(tmp_path / "s.fasta", ">a\nMKT\n>b\nMKTA\n")
    labels = _write(tmp_path / "l.fasta", ">a SET=train VALIDATION=False\nCHE\n>b SET=train VALIDATION=False\nCH\n")
    data, classes = read_residue_task(seqs, labels, on_bad_row="skip")
    assert classes == "CEH" and data.sequences == ["MKT"] and data.labels == [[0, 2, 1]]
    assert data.skipped == [f"{labels}:3 (>b): 2 labels for a sequence of 4 residues ({seqs}:3)"]
    with pytest.raises(TaskDataError, match="2 labels for a sequence of 4 residues"):
        read_residue_task(seqs, labels)


def test_token_labels_align_with_special_tokens_and_padding(tokenizer) -> None:
    data, _ = read_residue_task(*SS, classes="CHE", split="test")
    dataset = TaskDataset(data, tokenizer, "token-classification")
    batch = TaskCollator(tokenizer, "token-classification")([dataset[0], dataset[1]])
    assert batch["labels"].shape == batch["input_ids"].shape
    for row in range(2):
        n = len(data.sequences[row])
        assert batch["labels"][row, 0] == -100 and batch["labels"][row, n + 1 :].eq(-100).all()
        assert batch["labels"][row, 1 : n + 1].tolist() == data.labels[row]
