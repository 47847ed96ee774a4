"""The splits of a Hugging Face ``datasets`` dataset (``--dataset_name``): which split is train, valid and test, its
columns as the table readers take them (``ClassLabel`` ids read as their names, as a CSV would hold them), and
the class names a ``ClassLabel`` column carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..datasets_corpus import load_splits
from .arguments import TaskDataArguments, given_classes
from .columns import LABEL_COLUMNS, find_column, table_has_split_column
from .labels import task_label_kind
from .residues import read_residue_table, residue_classes
from .rows import LabelledSequences, TaskDataError
from .sequence_tables import ColumnReader, read_table_task, table_text
from .vocabulary import SPLITS, Split

#: Split names of a dataset taken as the validation split when ``--validation_split_name`` is not given.
VALIDATION_SPLIT_NAMES = ("validation", "valid", "val", "dev")


@dataclass
class DatasetTable:
    """One split of a loaded dataset, as the table readers of ``data.tasks`` take it; ``flip_split``: the rows of this
    split that FLIP's ``set``/``validation`` columns assign to it (None: the whole table)."""

    source: str
    header: list[str]
    column: ColumnReader
    features: Any
    flip_split: Split | None = None


def read_dataset_splits(
    args: TaskDataArguments, dataset_name: str
) -> tuple[dict[Split, LabelledSequences], list[str] | None]:
    tables = _dataset_tables(args, dataset_name)
    given = given_classes(args)
    if args.task == "token-classification":
        classes = "".join(given) if given else _dataset_residue_classes(tables, args)
        splits = {
            split: read_residue_table(
                t.source, t.header, t.column, classes, t.flip_split, args.sequence_column, args.label_column,
                args.mask_column, args.on_bad_row,
            )[0]
            for split, t in tables.items()
        }  # fmt: skip
        return splits, list(classes)
    kind = task_label_kind(args.task)
    splits = {
        split: read_table_task(
            t.source, t.header, t.column, kind, t.flip_split, args.sequence_column, args.label_column, args.on_bad_row
        )
        for split, t in tables.items()
    }
    if given is None and args.task == "classification":
        given = _class_label_names(tables["train"], args.label_column)
    return splits, given


def _dataset_tables(args: TaskDataArguments, name: str) -> dict[Split, DatasetTable]:
    """Which split of the dataset is train, valid and test; a single split with FLIP's ``set`` column holds all
    three, as a FLIP CSV does."""
    loaded = load_splits(name, args.dataset_config_name)
    if args.train_split_name not in loaded:
        raise TaskDataError(
            f"{name}: no split {args.train_split_name!r} (splits: {', '.join(loaded)}); choose with --train_split_name"
        )
    valid = _pick_split(loaded, name, args.validation_split_name, VALIDATION_SPLIT_NAMES, "--validation_split_name")
    test = _pick_split(loaded, name, args.test_split_name, ("test",), "--test_split_name")
    train = _table(name, args.train_split_name, loaded[args.train_split_name])
    if table_has_split_column(train.header, train.source):
        others = [split for split in (valid, test) if split is not None and split != args.train_split_name]
        if others:
            raise TaskDataError(
                f"{train.source}: has FLIP's 'set' column, which splits its rows into train, validation and test, "
                f"but the dataset has split(s) {', '.join(others)} too; keep one of the two ways of splitting"
            )
        return {
            split: DatasetTable(train.source, train.header, train.column, train.features, split) for split in SPLITS
        }
    chosen: dict[Split, str | None] = {"train": args.train_split_name, "valid": valid, "test": test}
    return {
        split: _table(name, dataset_split, loaded[dataset_split])
        for split, dataset_split in chosen.items()
        if dataset_split
    }


def _pick_split(
    loaded: dict[str, Any], name: str, wanted: str | None, defaults: tuple[str, ...], option: str
) -> str | None:
    if wanted is not None:
        if wanted not in loaded:
            raise TaskDataError(f"{name}: no split {wanted!r} (splits: {', '.join(loaded)}); check {option}")
        return wanted
    return next((split for split in defaults if split in loaded), None)


def _table(name: str, split: str, dataset: Any) -> DatasetTable:
    if getattr(dataset, "_indices", None) is not None:
        dataset = dataset.flatten_indices()
    features = dataset.features
    read: dict[str, list[object]] = {}  # FLIP's three splits of one table read each column once

    def column(column_name: str) -> list[object]:
        if column_name not in read:
            values = dataset.data.column(column_name).to_pylist()
            read[column_name] = _class_label_values(values, features.get(column_name))
        return read[column_name]

    return DatasetTable(f"{name} ({split})", list(dataset.column_names), column, features)


def _class_label_values(values: list[Any], feature: Any) -> list[object]:
    """``ClassLabel`` columns (and lists of them, per residue) hold ids: read their names, as a CSV would hold
    them (-1, the missing value of ``ClassLabel``, is missing)."""
    names = _class_label_feature_names(feature)
    if names is None:
        return values
    if _is_class_label(feature):
        return [names[v] if v is not None and v >= 0 else None for v in values]
    return [None if row is None else [names[v] if v >= 0 else "" for v in row] for row in values]


def _class_label_feature_names(feature: Any) -> list[str] | None:
    if _is_class_label(feature):
        return list(feature.names)
    inner: Any = getattr(feature, "feature", None)
    return list(inner.names) if _is_class_label(inner) else None


def _is_class_label(feature: Any) -> bool:
    return type(feature).__name__ == "ClassLabel" and hasattr(feature, "names")


def _class_label_names(table: DatasetTable, label_column: str | None) -> list[str] | None:
    """A ``ClassLabel`` label column's own names, in its order (None for other columns)."""
    index = find_column(table.header, label_column, LABEL_COLUMNS, table.source)
    if index is None or not _is_class_label(table.features.get(table.header[index])):
        return None
    return list(table.features[table.header[index]].names)


def _dataset_residue_classes(tables: dict[Split, DatasetTable], args: TaskDataArguments) -> str:
    """Per-residue class characters over every split used (as the FASTA reader takes them over its whole labels
    file), or a ``ClassLabel`` list column's own names."""
    train = tables["train"]
    index = find_column(train.header, args.label_column, LABEL_COLUMNS, train.source)
    if index is None:
        return ""  # the reader names the missing column
    names = _class_label_feature_names(train.features.get(train.header[index]))
    if names is not None:
        if any(len(name) != 1 for name in names):
            raise TaskDataError(
                f"{train.source}: per-residue class names must be single characters; column "
                f"{train.header[index]!r} has {names}"
            )
        return "".join(names)
    texts = []
    for table in {id(t.column): t for t in tables.values()}.values():
        position = find_column(table.header, args.label_column, LABEL_COLUMNS, table.source)
        if position is not None:
            texts += [table_text(value) for value in table.column(table.header[position])]
    return residue_classes(texts)
