"""Downstream-task data: where the train/valid/test splits come from (``TaskDataArguments``, shared by fine-tuning
and the baselines so both see one split), and the tokenised datasets and padding collator in the form
``transformers.Trainer`` expects.

The splits come either from files (TAPE/FLIP CSV, FLIP's per-residue FASTA triple) or from a Hugging Face
``datasets`` dataset (``--dataset_name``: a Hub name, a local folder, a ``save_to_disk`` folder, or one Parquet, CSV,
JSON or Arrow file), as transformers' ``run_glue.py`` takes them. Both are checked row by row by
``protconv.data.task_files`` with the same rules and give the same ``LabelledSequences``; everything after loading is
one code path. Class labels (names or integers) become ids numbered over all splits at once, and their names are
returned so that the fine-tuned model's ``config.id2label`` carries them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import BatchEncoding, PreTrainedTokenizerBase

from ..data.datasets_corpus import load_splits
from ..data.task_files import (
    LABEL_COLUMNS,
    ColumnReader,
    LabelledSequences,
    TaskDataError,
    assign_class_ids,
    csv_has_split_column,
    find_column,
    parse_classes,
    read_csv_task,
    read_residue_table,
    read_residue_task,
    read_table_task,
    report_skipped,
    residue_classes,
    table_has_split_column,
    table_text,
)
from ..data.tasks.vocabulary import SPLITS, TASK_TYPES, BadRowPolicy, LabelKind, Split, TaskType
from ..modeling.vocabulary import IGNORE_INDEX

logger = logging.getLogger(__name__)

#: Split names of a dataset taken as the validation split when ``--validation_split_name`` is not given.
VALIDATION_SPLIT_NAMES = ("validation", "valid", "val", "dev")


@dataclass
class TaskDataArguments:
    """Which task and which data: shared by fine-tuning and the supervised baselines, so both see one split."""

    task: TaskType = field(metadata={"help": " | ".join(TASK_TYPES)})
    train_file: str | None = field(
        default=None,
        metadata={"help": "CSV (TAPE seq,label or FLIP) or, for token tasks, sequences FASTA (or use --dataset_name)"},
    )
    validation_file: str | None = field(default=None, metadata={"help": "CSV of the validation split (TAPE)"})
    test_file: str | None = field(default=None, metadata={"help": "CSV of the test split (TAPE)"})
    labels_file: str | None = field(default=None, metadata={"help": "token tasks: per-residue labels FASTA"})
    mask_file: str | None = field(default=None, metadata={"help": "token tasks: 0/1 mask FASTA (0 = ignored)"})
    classes: str | None = field(
        default=None,
        metadata={
            "help": "class names in id order, saved as config.id2label: the label characters for token tasks (CHE), "
            "comma-separated names for classification (soluble,membrane). Default: the names found in the data "
            "(sorted), or integer labels as their own ids"
        },
    )
    sequence_column: str | None = field(default=None, metadata={"help": "default: sequence or seq"})
    label_column: str | None = field(default=None, metadata={"help": "default: target or label"})
    on_bad_row: BadRowPolicy = "skip"
    max_train_samples: int | None = field(default=None, metadata={"help": "subsample training rows (seeded)"})
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "read the splits with `datasets` instead of files: a Hub dataset, a local folder of data files, "
            "a save_to_disk folder, or one .parquet/.csv/.tsv/.json/.jsonl/.arrow file"
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "the dataset's configuration (Hub)"})
    train_split_name: str = field(default="train", metadata={"help": "the dataset's training split"})
    validation_split_name: str | None = field(
        default=None, metadata={"help": "default: validation, valid, val or dev, whichever the dataset has"}
    )
    test_split_name: str | None = field(default=None, metadata={"help": "default: test, if the dataset has it"})
    mask_column: str | None = field(
        default=None, metadata={"help": "token tasks with --dataset_name: 0/1 mask column (default: mask, if any)"}
    )

    def __post_init__(self) -> None:
        if not (self.train_file or self.dataset_name):
            raise ValueError("the following arguments are required: --train_file or --dataset_name")
        if self.train_file and self.dataset_name:
            raise ValueError("--train_file and --dataset_name both name the training data; give one of them")
        if self.dataset_name:
            mixed = [
                name for name in ("validation_file", "test_file", "labels_file", "mask_file") if getattr(self, name)
            ]
            if mixed:
                options = ", ".join(f"--{name}" for name in mixed)
                raise ValueError(f"--dataset_name reads every split from the dataset; {options} cannot be mixed in")
        elif self.mask_column:
            raise ValueError("--mask_column reads a --dataset_name column; with files, use --mask_file")
        if self.classes is not None and self.task == "regression":
            raise ValueError("--classes names the classes of a classification task; regression has none")

    @property
    def source(self) -> str:
        """The training data as the user named it, for messages and model cards."""
        return self.dataset_name or self.train_file or ""


class TaskDataset(Dataset):
    """Tokenises on access; per-residue labels are aligned to tokens (special tokens get -100).

    ``max_length`` (tokens, special tokens included) truncates longer sequences, and per-residue labels with them:
    the labels of the residues kept, in order. ``label_scale`` = (mean, std) normalises regression targets; the
    fine-tuning path inverts it at prediction.
    """

    def __init__(
        self,
        data: LabelledSequences,
        tokenizer: PreTrainedTokenizerBase,
        task: TaskType,
        max_length: int | None = None,
        label_scale: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        if len(data) == 0:
            raise ValueError("empty task dataset (check the split and the skipped-row report)")
        self.data, self.tokenizer, self.task, self.max_length = data, tokenizer, task, max_length
        self.label_scale = label_scale

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, list | float | int]:
        encoded = self.tokenizer(
            self.data.sequences[index],
            truncation=self.max_length is not None,
            max_length=self.max_length,
            return_special_tokens_mask=True,
        )
        special = encoded.pop("special_tokens_mask")
        label = self.data.labels[index]
        if self.task == "token-classification":
            residue_labels = iter(label)
            encoded["labels"] = [IGNORE_INDEX if is_special else next(residue_labels) for is_special in special]
        elif self.task == "regression":
            mean, std = self.label_scale
            encoded["labels"] = (label - mean) / std
        else:
            encoded["labels"] = label
        return dict(encoded)


def count_truncated(data: LabelledSequences, max_length: int | None, special_tokens: int) -> int:
    """How many sequences of ``data`` ``max_length`` tokens (special tokens included) would cut."""
    if max_length is None:
        return 0
    return sum(len(sequence) + special_tokens > max_length for sequence in data.sequences)


class TaskCollator:
    """Pads inputs with the tokenizer and labels to match: -100 for per-residue labels, a tensor otherwise."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, task: TaskType) -> None:
        self.tokenizer, self.task = tokenizer, task

    def __call__(self, features: Sequence[dict]) -> BatchEncoding:
        labels = [feature["labels"] for feature in features]
        inputs = [{k: v for k, v in feature.items() if k != "labels"} for feature in features]
        batch = self.tokenizer.pad(inputs, padding=True, return_tensors="pt")
        if self.task == "token-classification":
            width = batch["input_ids"].shape[1]
            batch["labels"] = torch.tensor([row + [IGNORE_INDEX] * (width - len(row)) for row in labels])
        elif self.task == "regression":
            batch["labels"] = torch.tensor(labels, dtype=torch.float32)
        else:
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch


def load_task_splits(
    args: TaskDataArguments, seed: int = 0, num_labels: int | None = None
) -> tuple[dict[Split, LabelledSequences], list[str] | None]:
    """train/valid/test data (absent splits omitted) and, for classification and token tasks, the class names in
    id order (for ``config.id2label``).

    ``num_labels`` (classification): the number of classes expected; an error if the data has another number.
    Under ``on_bad_row="skip"`` every skipped row (file or dataset split, line or row, reason) and a count per
    split are logged as one warning (``protconv.downstream.task_data``; on stderr when logging is not configured).
    A training split left without a single usable row is an error.
    """
    splits, classes = _read_splits(args)
    if args.task == "classification":
        classes = assign_class_ids(splits, classes, num_labels, args.on_bad_row)
    if not len(splits.get("train", ())):
        raise TaskDataError(_no_training_rows(args, splits.get("train")))
    report = report_skipped(splits)
    if report:
        logger.warning(report)
    splits = {split: data for split, data in splits.items() if len(data)}
    if args.max_train_samples:
        splits["train"] = subsample(splits["train"], args.max_train_samples, seed)
    return splits, classes


def _no_training_rows(args: TaskDataArguments, train: LabelledSequences | None) -> str:
    message = f"{args.source}: no usable training rows"
    if train is not None and train.skipped:
        message += f" ({len(train.skipped)} bad rows skipped; the first: {train.skipped[0]})"
    return message


def _given_classes(args: TaskDataArguments) -> list[str] | None:
    if args.classes is None:
        return None
    return parse_classes(args.classes, per_residue=args.task == "token-classification")


def _read_splits(args: TaskDataArguments) -> tuple[dict[Split, LabelledSequences], list[str] | None]:
    if args.dataset_name:
        return _read_dataset_splits(args, args.dataset_name)
    if args.train_file is None:  # not reached: TaskDataArguments refuses it first
        raise ValueError("the following arguments are required: --train_file or --dataset_name")
    if args.task == "token-classification":
        return _read_residue_files(args, args.train_file)
    train_file = args.train_file
    if csv_has_split_column(train_file):
        splits = {split: _read_csv_split(args, train_file, split) for split in SPLITS}
    else:
        files: dict[Split, str | None] = {"train": train_file, "valid": args.validation_file, "test": args.test_file}
        splits = {split: _read_csv_split(args, path, None) for split, path in files.items() if path}
    return splits, _given_classes(args)


def _read_csv_split(args: TaskDataArguments, path: str, split: Split | None) -> LabelledSequences:
    """One split of a CSV task: a TAPE file of its own (``split`` None) or the rows of a FLIP file."""
    return read_csv_task(path, _label_kind(args.task), split, args.sequence_column, args.label_column, args.on_bad_row)


def _read_residue_files(args: TaskDataArguments, train_file: str) -> tuple[dict[Split, LabelledSequences], list[str]]:
    """FLIP's FASTA triple; the classes found by the first split's read (over the whole labels file) are those
    of the later splits."""
    if not args.labels_file:
        raise ValueError("token-classification needs --labels_file (and usually --mask_file)")
    given = _given_classes(args)
    known = "".join(given) if given else None
    splits: dict[Split, LabelledSequences] = {}
    for split in SPLITS:
        splits[split], classes = read_residue_task(
            train_file, args.labels_file, args.mask_file, known, split, on_bad_row=args.on_bad_row
        )
        known = classes
    return splits, list(classes)


def _label_kind(task: TaskType) -> LabelKind:
    """Regression reads numbers; classification keeps labels as written (names or ids) for ``assign_class_ids``."""
    return "float" if task == "regression" else "class"


# ---------------------------------------------------------------- datasets


@dataclass
class _Table:
    """One split of a loaded dataset, as the readers of ``task_files`` take it; ``flip_split``: the rows of this
    split that FLIP's ``set``/``validation`` columns assign to it (None: the whole table)."""

    source: str
    header: list[str]
    column: ColumnReader
    features: Any
    flip_split: Split | None = None


def _read_dataset_splits(
    args: TaskDataArguments, dataset_name: str
) -> tuple[dict[Split, LabelledSequences], list[str] | None]:
    tables = _dataset_tables(args, dataset_name)
    given = _given_classes(args)
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
    kind = _label_kind(args.task)
    splits = {
        split: read_table_task(
            t.source, t.header, t.column, kind, t.flip_split, args.sequence_column, args.label_column, args.on_bad_row
        )
        for split, t in tables.items()
    }
    if given is None and args.task == "classification":
        given = _class_label_names(tables["train"], args.label_column)
    return splits, given


def _dataset_tables(args: TaskDataArguments, name: str) -> dict[Split, _Table]:
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
        return {split: _Table(train.source, train.header, train.column, train.features, split) for split in SPLITS}
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


def _table(name: str, split: str, dataset: Any) -> _Table:
    if getattr(dataset, "_indices", None) is not None:
        dataset = dataset.flatten_indices()
    features = dataset.features
    read: dict[str, list[object]] = {}  # FLIP's three splits of one table read each column once

    def column(column_name: str) -> list[object]:
        if column_name not in read:
            values = dataset.data.column(column_name).to_pylist()
            read[column_name] = _class_label_values(values, features.get(column_name))
        return read[column_name]

    return _Table(f"{name} ({split})", list(dataset.column_names), column, features)


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


def _class_label_names(table: _Table, label_column: str | None) -> list[str] | None:
    """A ``ClassLabel`` label column's own names, in its order (None for other columns)."""
    index = find_column(table.header, label_column, LABEL_COLUMNS, table.source)
    if index is None or not _is_class_label(table.features.get(table.header[index])):
        return None
    return list(table.features[table.header[index]].names)


def _dataset_residue_classes(tables: dict[Split, _Table], args: TaskDataArguments) -> str:
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


def subsample(data: LabelledSequences, count: int, seed: int) -> LabelledSequences:
    keep = sorted(np.random.default_rng(seed).choice(len(data), size=min(count, len(data)), replace=False))
    return LabelledSequences(
        [data.sequences[i] for i in keep], [data.labels[i] for i in keep], [data.names[i] for i in keep], data.skipped
    )
