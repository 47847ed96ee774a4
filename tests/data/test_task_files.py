"""Downstream task loaders on real slices (tests/data), their splits, bad-row handling and token alignment."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from protconv.data.fasta import read_fasta_entries
from protconv.data.tasks.labels import assign_class_ids, parse_classes
from protconv.data.tasks.residues import read_residue_table, read_residue_task
from protconv.data.tasks.rows import LabelledSequences, TaskDataError
from protconv.data.tasks.sequence_tables import read_csv_task, read_table_task
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


# ---------------------------------------------------------------- tables in memory, class names


def _reader(columns: dict[str, list]):
    return list(columns), columns.__getitem__


def test_a_table_gets_the_checks_of_a_csv_file_with_split_and_row_in_messages() -> None:
    header, column = _reader(
        {"seq": ["MKT", "MKV", None, "MK1", "MKW", "MKY"], "label": [1.0, None, 2.0, 3.0, float("nan"), 4.5]}
    )
    data = read_table_task("t.parquet (train)", header, column, on_bad_row="skip")
    assert data.sequences == ["MKT", "MKY"] and data.labels == [1.0, 4.5]
    assert data.names == ["t.parquet (train) row 0", "t.parquet (train) row 5"]
    assert data.skipped[0] == "t.parquet (train) row 1: missing label"
    assert data.skipped[1].startswith("t.parquet (train) row 2") and "empty sequence" in data.skipped[1]
    assert "'1' at position 3" in data.skipped[2] and "row 4: label 'nan' is not a finite number" in data.skipped[3]
    with pytest.raises(TaskDataError, match=r"^t\.parquet \(train\) row 1: missing label$"):
        read_table_task("t.parquet (train)", header, column)


def test_a_missing_column_names_it_and_the_columns_there_are(tmp_path) -> None:
    header, column = _reader({"protein": ["MKT"], "fitness": [1.0]})
    expected = r"no column 'sequence' or 'seq' \(columns: protein, fitness\); name the right one with --sequence_column"
    with pytest.raises(TaskDataError, match=r"^t \(train\): " + expected):
        read_table_task("t (train)", header, column)
    with pytest.raises(TaskDataError, match=r"no column 'score' \(columns: protein, fitness\); .* --label_column"):
        read_table_task("t (train)", header, column, sequence_column="protein", label_column="score")
    with pytest.raises(TaskDataError, match=expected):
        read_csv_task(_write(tmp_path / "c.csv", "protein,fitness\nMKT,1\n"))


def test_flip_columns_split_a_table_as_they_split_a_csv_file() -> None:
    path = DATA / "gb1_three_vs_rest_slice.csv"
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    columns = {name: [row[i] for row in rows[1:]] for i, name in enumerate(rows[0])}
    columns["target"] = [float(value) for value in columns["target"]]
    columns["validation"] = [value == "True" for value in columns["validation"]]
    header, column = _reader(columns)
    for split in ("train", "valid", "test"):
        table = read_table_task("gb1 (train)", header, column, split=split)
        file = read_csv_task(path, split=split)
        assert table.sequences == file.sequences and table.labels == file.labels


def test_per_residue_labels_from_a_table_match_the_fasta_triple() -> None:
    entries = {kind: list(read_fasta_entries(path)) for kind, path in zip(("seq", "lab", "mask"), SS, strict=True)}
    by_id = {kind: {entry.id: entry.text for entry in values} for kind, values in entries.items()}
    labels = entries["lab"]
    header, column = _reader(
        {
            "sequence": [by_id["seq"][entry.id] for entry in labels],
            "label": [list(entry.text) for entry in labels],  # a list column, as Parquet may hold it
            "mask": [by_id["mask"][entry.id] for entry in labels],
            "set": [entry.header.split("SET=")[1].split()[0] for entry in labels],
            "validation": [entry.header.split("VALIDATION=")[1].split()[0] for entry in labels],
        }
    )
    for split in ("train", "valid", "test"):
        table, classes = read_residue_table("ss (train)", header, column, "CHE", split=split)
        fasta, _ = read_residue_task(*SS, classes="CHE", split=split)
        assert classes == "CHE" and table.sequences == fasta.sequences and table.labels == fasta.labels
    bad_header, bad_column = _reader({"sequence": ["MKT", "MKT"], "label": ["CHX", "CH"], "mask": ["102", "111"]})
    data, classes = read_residue_table("t (train)", bad_header, bad_column, on_bad_row="skip")
    assert classes == "CHX" and not len(data)
    assert data.skipped == [
        "t (train) row 0: mask must be 3 characters of 0/1",
        "t (train) row 1: 2 labels for a sequence of 3 residues",
    ]


def test_class_names_become_ids_shared_by_every_split() -> None:
    splits = {
        "train": LabelledSequences(["MK", "MQ", "MR"], ["soluble", "membrane", "soluble"], ["f:2", "f:3", "f:4"]),
        "valid": LabelledSequences(["MA", "MC"], ["membrane", "periplasm"], ["g:2", "g:3"]),
    }
    assert assign_class_ids(splits) == ["membrane", "periplasm", "soluble"]
    assert splits["train"].labels == [2, 0, 2] and splits["valid"].labels == [0, 1]


def test_given_classes_fix_the_order_and_other_labels_are_bad_rows() -> None:
    data = LabelledSequences(
        ["MK", "MQ", "MR", "MS"], ["soluble", "membrane", "1", "nucleus"], ["f:2", "f:3", "f:4", "f:5"]
    )
    names = assign_class_ids({"train": data}, ["soluble", "membrane"], on_bad_row="skip")
    assert names == ["soluble", "membrane"] and data.labels == [0, 1, 1]  # "1": an id within range
    assert data.skipped == ["f:5: label 'nucleus' is not one of the classes (soluble, membrane)"]
    with pytest.raises(TaskDataError, match="f:5: label 'nucleus' is not one of the classes"):
        assign_class_ids({"train": LabelledSequences(["MS"], ["nucleus"], ["f:5"])}, ["soluble", "membrane"])


def test_integer_labels_are_their_own_ids_and_names() -> None:
    data = LabelledSequences(["MK", "MQ", "MR"], ["2", "0", "3.0"], ["f:2", "f:3", "f:4"])
    assert assign_class_ids({"train": data}) == ["0", "1", "2", "3"] and data.labels == [2, 0, 3]
    data = LabelledSequences(["MK"], ["2"], ["f:2"])
    assert assign_class_ids({"train": data}, num_labels=5) == ["0", "1", "2", "3", "4"]
    with pytest.raises(TaskDataError, match="--num_labels 2 does not fit the 3 classes of the data"):
        assign_class_ids({"train": LabelledSequences(["MK"], ["2"], ["f:2"])}, num_labels=2)


def test_classes_option_parsing() -> None:
    assert parse_classes("CHE", per_residue=True) == ["C", "H", "E"]
    assert parse_classes("C, H, E", per_residue=True) == ["C", "H", "E"]
    assert parse_classes("soluble,membrane", per_residue=False) == ["soluble", "membrane"]
    for text, per_residue, message in [
        ("CHC", True, "'C' given twice"),
        ("helix,strand", True, "single characters"),
        ("soluble", False, "at least two class names"),
        ("a,,b", False, "an empty class name"),
    ]:
        with pytest.raises(TaskDataError, match=message):
            parse_classes(text, per_residue)


def test_the_former_import_paths_still_name_the_same_objects() -> None:
    from protconv.data import task_files, tasks
    from protconv.data.tasks import arguments, columns, dataset_splits, rows, sequence_tables
    from protconv.downstream import task_data

    assert (
        task_files.read_csv_task is sequence_tables.read_csv_task and task_files.read_residue_task is read_residue_task
    )
    assert task_files.find_column is columns.find_column and task_files.TaskDataError is rows.TaskDataError
    assert task_data.TaskDataArguments is arguments.TaskDataArguments and task_data.subsample is rows.subsample
    assert task_data.VALIDATION_SPLIT_NAMES is dataset_splits.VALIDATION_SPLIT_NAMES
    assert task_data.logger.name == "protconv.downstream.task_data", "the skipped-row warning keeps its logger"
    assert tasks.__doc__
