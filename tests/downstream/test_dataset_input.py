"""--dataset_name: the splits of a `datasets` dataset (local Parquet, CSV, JSON files or folders) are the splits the
file options give, checked by the same rules; class names and split names as run_glue.py takes them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from protconv.data.task_files import TaskDataError
from protconv.downstream.task_data import TaskDataArguments, load_task_splits
from tests.helpers import DATA

GB1 = DATA / "gb1_three_vs_rest_slice.csv"
STABILITY = {"train": DATA / "stability_train_slice.csv", "validation": DATA / "stability_valid_slice.csv"}
SS = {kind: DATA / f"ss_{kind}_slice.fasta" for kind in ("sequences", "labels", "mask")}


@pytest.fixture()
def local_datasets(tmp_path, monkeypatch):
    """`datasets` offline, caching under tmp_path (never the user's cache)."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    datasets.disable_progress_bars()
    return tmp_path


def csv_columns(path: Path) -> dict[str, list]:
    """The columns of a CSV as a typed table holds them: numbers as floats, True/False as bools (empty: None)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {name: _typed([row[name] for row in rows]) for name in rows[0]}


def _typed(values: list[str]) -> list:
    if set(values) <= {"True", "False", ""}:
        return [None if value == "" else value == "True" for value in values]
    try:
        return [float(value) for value in values]
    except ValueError:
        return values


def write_parquet(columns: dict[str, list], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def write_jsonl(columns: dict[str, list], path: Path) -> Path:
    """JSON lines with every float written exactly (pandas' to_json would round to 10 digits)."""
    names = list(columns)
    with open(path, "w", encoding="utf-8") as handle:
        for values in zip(*columns.values(), strict=True):
            handle.write(json.dumps(dict(zip(names, values, strict=True))) + "\n")
    return path


def same_splits(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(
        first[s].sequences == second[s].sequences and first[s].labels == second[s].labels for s in first
    )


def test_csv_parquet_and_json_datasets_give_the_splits_of_the_flip_file(local_datasets) -> None:
    expected, _ = load_task_splits(TaskDataArguments("regression", str(GB1)))
    columns = csv_columns(GB1)
    for source in (
        GB1,
        write_parquet(columns, local_datasets / "gb1.parquet"),
        write_jsonl(columns, local_datasets / "gb1.jsonl"),
    ):
        splits, _ = load_task_splits(TaskDataArguments("regression", dataset_name=str(source)))
        assert {s: len(d) for s, d in splits.items()} == {"train": 120, "valid": 30, "test": 50}, source
        assert same_splits(splits, expected), source
        assert splits["valid"].names[0].startswith(f"{source} (train) row ")


def test_a_folder_of_split_files_gives_the_splits_of_the_tape_files(local_datasets) -> None:
    expected, _ = load_task_splits(
        TaskDataArguments("regression", str(STABILITY["train"]), str(STABILITY["validation"]))
    )
    folder = local_datasets / "stability"
    for split, path in STABILITY.items():
        write_parquet(csv_columns(path), folder / f"{split}.parquet")
    splits, _ = load_task_splits(TaskDataArguments("regression", dataset_name=str(folder)))
    assert same_splits(splits, expected)


def test_split_names_are_chosen_or_reported_with_the_splits_there_are(local_datasets) -> None:
    folder = local_datasets / "stability"
    for split, path in STABILITY.items():
        write_parquet(csv_columns(path), folder / f"{split}.parquet")
    swapped = TaskDataArguments(
        "regression", dataset_name=str(folder), train_split_name="validation", validation_split_name="train"
    )
    splits, _ = load_task_splits(swapped)
    assert (len(splits["train"]), len(splits["valid"])) == (50, 150)
    with pytest.raises(TaskDataError, match=r"stability: no split 'dev' \(splits: train, validation\); check "
                                            r"--validation_split_name"):  # fmt: skip
        load_task_splits(TaskDataArguments("regression", dataset_name=str(folder), validation_split_name="dev"))
    with pytest.raises(TaskDataError, match=r"no split 'fit' \(splits: train, validation\); choose with --train_split"):
        load_task_splits(TaskDataArguments("regression", dataset_name=str(folder), train_split_name="fit"))


def test_missing_columns_are_named_with_the_columns_there_are(local_datasets) -> None:
    columns = csv_columns(GB1)
    columns["protein"] = columns.pop("sequence")
    path = write_parquet(columns, local_datasets / "renamed.parquet")
    with pytest.raises(
        TaskDataError,
        match=r"renamed\.parquet \(train\): no column 'sequence' or 'seq' \(columns: target, set, validation, "
        r"protein\); name the right one with --sequence_column",
    ):
        load_task_splits(TaskDataArguments("regression", dataset_name=str(path)))
    with pytest.raises(TaskDataError, match=r"no column 'fitness' \(columns: target, set, validation, protein\)"):
        load_task_splits(
            TaskDataArguments("regression", dataset_name=str(path), sequence_column="protein", label_column="fitness")
        )
    splits, _ = load_task_splits(TaskDataArguments("regression", dataset_name=str(path), sequence_column="protein"))
    assert len(splits["train"]) == 120


def test_bad_rows_are_reported_with_split_and_row_or_stop_the_run(local_datasets, caplog) -> None:
    columns = csv_columns(STABILITY["train"])
    columns["label"][3] = float("nan")
    columns["seq"][5] = "MKT1"
    path = write_parquet(columns, local_datasets / "bad" / "train.parquet")
    with caplog.at_level("WARNING", logger="protconv.downstream.task_data"):
        splits, _ = load_task_splits(TaskDataArguments("regression", dataset_name=str(path.parent)))
    assert len(splits["train"]) == 148
    assert f"{path.parent} (train) row 3: label 'nan' is not a finite number" in caplog.text
    assert f"{path.parent} (train) row 5: character '1' at position 4" in caplog.text
    with pytest.raises(TaskDataError, match=r"bad \(train\) row 3: label 'nan' is not a finite number"):
        load_task_splits(TaskDataArguments("regression", dataset_name=str(path.parent), on_bad_row="error"))


def test_a_flip_set_column_beside_other_splits_is_refused(local_datasets) -> None:
    folder = local_datasets / "both"
    write_parquet(csv_columns(GB1), folder / "train.parquet")
    write_parquet(csv_columns(GB1), folder / "test.parquet")
    with pytest.raises(TaskDataError, match=r"has FLIP's 'set' column, .* but the dataset has split\(s\) test too"):
        load_task_splits(TaskDataArguments("regression", dataset_name=str(folder)))


def test_per_residue_labels_from_a_dataset_match_the_fasta_triple(local_datasets) -> None:
    from protconv.data.fasta import read_fasta_entries

    texts = {kind: {e.id: e for e in read_fasta_entries(path)} for kind, path in SS.items()}
    labels = list(texts["labels"].values())
    columns = {
        "seq": [texts["sequences"][e.id].text for e in labels],
        "dssp3": [e.text for e in labels],
        "resolved": [texts["mask"][e.id].text for e in labels],
        "set": [e.header.split("SET=")[1].split()[0] for e in labels],
        "validation": [e.header.split("VALIDATION=")[1].split()[0] == "True" for e in labels],
    }
    path = write_parquet(columns, local_datasets / "ss.parquet")
    files = TaskDataArguments(
        "token-classification", str(SS["sequences"]), labels_file=str(SS["labels"]), mask_file=str(SS["mask"])
    )
    expected, expected_classes = load_task_splits(files)
    dataset = TaskDataArguments(
        "token-classification", dataset_name=str(path), label_column="dssp3", mask_column="resolved"
    )
    splits, classes = load_task_splits(dataset)
    assert classes == expected_classes == ["C", "E", "H"]  # sorted, over every split
    assert same_splits(splits, expected)
    given, _ = load_task_splits(TaskDataArguments(**{**vars(dataset), "classes": "CHE"}))
    assert given["test"].labels[0] != splits["test"].labels[0]


def test_class_names_of_a_csv_and_of_a_class_label_column(local_datasets) -> None:
    import datasets

    columns = csv_columns(STABILITY["train"])
    columns["label"] = ["stable" if value > 0.5 else "unstable" for value in columns["label"]]
    path = local_datasets / "named.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["seq", "label"], *zip(columns["seq"], columns["label"], strict=True)])
    from_file, names = load_task_splits(TaskDataArguments("classification", str(path)))
    assert names == ["stable", "unstable"]
    assert from_file["train"].labels == [int(value == "unstable") for value in columns["label"]]
    ordered, names = load_task_splits(TaskDataArguments("classification", str(path), classes="unstable,stable"))
    assert names == ["unstable", "stable"] and ordered["train"].labels[0] == 1 - from_file["train"].labels[0]
    features = datasets.Features(
        {"seq": datasets.Value("string"), "label": datasets.ClassLabel(names=["unstable", "stable"])}
    )
    table = datasets.Dataset.from_dict(
        {"seq": columns["seq"], "label": [int(value == "stable") for value in columns["label"]]}, features=features
    )
    table.save_to_disk(str(local_datasets / "saved"))
    splits, names = load_task_splits(TaskDataArguments("classification", dataset_name=str(local_datasets / "saved")))
    assert names == ["unstable", "stable"], "a ClassLabel column keeps its own order"
    assert splits["train"].labels == ordered["train"].labels


def test_arguments_name_one_source_and_no_mixture() -> None:
    with pytest.raises(ValueError, match="arguments are required: --train_file or --dataset_name"):
        TaskDataArguments("regression")
    with pytest.raises(ValueError, match="--train_file and --dataset_name both name the training data"):
        TaskDataArguments("regression", "a.csv", dataset_name="b.parquet")
    with pytest.raises(ValueError, match="--validation_file cannot be mixed in"):
        TaskDataArguments("regression", validation_file="v.csv", dataset_name="b.parquet")
    with pytest.raises(ValueError, match="regression has none"):
        TaskDataArguments("regression", "a.csv", classes="a,b")


def test_a_missing_local_dataset_is_reported_without_a_hub_lookup(tmp_path) -> None:
    pytest.importorskip("datasets")
    with pytest.raises(FileNotFoundError, match="a dataset given as a local path"):
        load_task_splits(TaskDataArguments("regression", dataset_name=str(tmp_path / "absent.parquet")))
    with pytest.raises(ValueError, match=r"cannot tell the file's format from its extension '\.txt'"):
        load_task_splits(TaskDataArguments("regression", dataset_name=str(_touch(tmp_path / "rows.txt"))))


def _touch(path: Path) -> Path:
    path.write_text("seq,label\nMKT,1\n")
    return path


def test_pretraining_reads_a_single_local_file_through_the_same_loader(local_datasets) -> None:
    """datasets_corpus.load is pretraining's reader too: one file is a dataset whose one split is train."""
    from protconv.data.datasets_corpus import DatasetRecords, load

    sequences = ["MKTAYIAK", "QQRS", "MSLLTEV"]
    path = write_parquet({"id": ["a", "b", "c"], "seq": sequences}, local_datasets / "proteins.parquet")
    records = DatasetRecords(str(path), column="seq", dataset=load(str(path), None, "train"))
    assert records.read([0, 1, 2]) == sequences and records.name == f"{path} (train)"
    tsv = local_datasets / "proteins.tsv"
    tsv.write_text("id\tseq\na\tNA\n")  # "NA" is a protein here (Asn-Ala), not a missing value
    assert load(str(tsv), None, "train")["seq"][:] == ["NA"]
    with pytest.raises(ValueError, match="--dataset_config_name 'x' applies to Hub datasets, not to a local file"):
        load(str(path), "x", "train")
