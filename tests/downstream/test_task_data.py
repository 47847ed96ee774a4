"""Which rows make the fine-tuning/baseline splits: FLIP detection with a real CSV parser, skipped rows reported."""

from __future__ import annotations

import csv

import pytest

from protconv.data.tasks.rows import TaskDataError
from protconv.downstream.task_data import TaskDataArguments, load_task_splits
from tests.helpers import DATA

GB1 = DATA / "gb1_three_vs_rest_slice.csv"


def rows_of(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def write_rows(path, rows: list[list[str]], **dialect) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, **dialect).writerows(rows)


@pytest.mark.parametrize(
    "dialect", [{"quoting": csv.QUOTE_ALL}, {"quoting": csv.QUOTE_NONNUMERIC}], ids=["QUOTE_ALL", "write.csv"]
)
def test_quoted_flip_header_is_detected_and_test_rows_are_never_trained_on(tmp_path, dialect) -> None:
    """R's write.csv and pandas' QUOTE_ALL quote the header: the FLIP 'set' column must still be seen."""
    rows = rows_of(GB1)
    quoted = tmp_path / "quoted.csv"
    write_rows(quoted, rows, **dialect)
    assert quoted.read_text().startswith('"sequence","target","set","validation"')
    splits, _ = load_task_splits(TaskDataArguments(task="regression", train_file=str(quoted)))
    expected, _ = load_task_splits(TaskDataArguments(task="regression", train_file=str(GB1)))
    assert {split: len(data) for split, data in splits.items()} == {"train": 120, "valid": 30, "test": 50}
    assert {split: data.sequences for split, data in splits.items()} == {
        split: data.sequences for split, data in expected.items()
    }
    test_sequences = {row[0] for row in rows[1:] if row[2] == "test"}
    assert not test_sequences & set(splits["train"].sequences)


def test_skipped_rows_are_reported_with_file_line_reason_and_counts(tmp_path, caplog) -> None:
    rows = rows_of(GB1)
    rows[2][1] = ""  # line 3: missing label (a training row)
    rows[5][0] = "MKT1"  # line 6: invalid sequence
    bad = tmp_path / "bad.csv"
    write_rows(bad, rows)
    with caplog.at_level("WARNING", logger="protconv.downstream.task_data"):
        splits, _ = load_task_splits(TaskDataArguments(task="regression", train_file=str(bad)))
    assert len(splits["train"]) == 118
    report = caplog.text
    assert f"{bad}:3: missing label" in report
    assert f"{bad}:6" in report
    assert "skipped 2 bad rows (train: 2)" in report
    caplog.clear()
    load_task_splits(TaskDataArguments(task="regression", train_file=str(GB1)))
    assert "skipped" not in caplog.text, "nothing to report for a clean file"


def test_a_file_of_only_bad_rows_is_an_error_naming_the_first(tmp_path, caplog) -> None:
    path = tmp_path / "all_bad.csv"
    path.write_text("sequence,label\nMKT,\nMQY,nan\n")
    with pytest.raises(TaskDataError, match=r"all_bad\.csv: no usable training rows \(2 bad rows skipped; the first: "
                                            r".*all_bad\.csv:2: missing label\)"):  # fmt: skip
        load_task_splits(TaskDataArguments(task="regression", train_file=str(path)))
    with pytest.raises(TaskDataError, match=r"all_bad\.csv:2: missing label"):
        load_task_splits(TaskDataArguments(task="regression", train_file=str(path), on_bad_row="error"))
