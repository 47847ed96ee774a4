"""From ``TaskDataArguments`` to the train/valid/test splits: files (TAPE CSV per split, one FLIP CSV, FLIP's
per-residue FASTA triple) or a ``datasets`` dataset, all checked row by row with the same rules into the same
``LabelledSequences``; class labels numbered over all splits at once."""

from __future__ import annotations

from typing import NamedTuple

from .arguments import TaskDataArguments, given_classes
from .dataset_splits import read_dataset_splits
from .labels import assign_class_ids, task_label_kind
from .residues import read_residue_task
from .rows import LabelledSequences, TaskDataError, report_skipped, subsample
from .sequence_tables import csv_has_split_column, read_csv_task
from .vocabulary import SPLITS, Split


class TaskSplits(NamedTuple):
    """What a task's data arguments give: the splits, the class names in id order (classification and token tasks;
    for ``config.id2label``) and the report of the rows skipped (``""`` when none was)."""

    splits: dict[Split, LabelledSequences]
    classes: list[str] | None
    skipped: str


def read_task_splits(args: TaskDataArguments, seed: int = 0, num_labels: int | None = None) -> TaskSplits:
    """train/valid/test data (absent splits omitted), the class names and the skipped-row report.

    ``num_labels`` (classification): the number of classes expected; an error if the data has another number.
    Under ``on_bad_row="skip"`` the report lists every skipped row (file or dataset split, line or row, reason)
    under a count per split; the caller logs it, under the logger its users filter on (see
    :func:`protconv.downstream.task_data.load_task_splits`). A training split left without a single usable row
    is an error. ``max_train_samples`` subsamples the training rows with ``seed``.
    """
    splits, classes = _read_splits(args)
    if args.task == "classification":
        classes = assign_class_ids(splits, classes, num_labels, args.on_bad_row)
    if not len(splits.get("train", ())):
        raise TaskDataError(_no_training_rows(args, splits.get("train")))
    report = report_skipped(splits)
    splits = {split: data for split, data in splits.items() if len(data)}
    if args.max_train_samples:
        splits["train"] = subsample(splits["train"], args.max_train_samples, seed)
    return TaskSplits(splits, classes, report)


def _no_training_rows(args: TaskDataArguments, train: LabelledSequences | None) -> str:
    message = f"{args.source}: no usable training rows"
    if train is not None and train.skipped:
        message += f" ({len(train.skipped)} bad rows skipped; the first: {train.skipped[0]})"
    return message


def _read_splits(args: TaskDataArguments) -> tuple[dict[Split, LabelledSequences], list[str] | None]:
    if args.dataset_name:
        return read_dataset_splits(args, args.dataset_name)
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
    return splits, given_classes(args)


def _read_csv_split(args: TaskDataArguments, path: str, split: Split | None) -> LabelledSequences:
    """One split of a CSV task: a TAPE file of its own (``split`` None) or the rows of a FLIP file."""
    return read_csv_task(
        path, task_label_kind(args.task), split, args.sequence_column, args.label_column, args.on_bad_row
    )


def _read_residue_files(args: TaskDataArguments, train_file: str) -> tuple[dict[Split, LabelledSequences], list[str]]:
    """FLIP's FASTA triple; the classes found by the first split's read (over the whole labels file) are those
    of the later splits."""
    if not args.labels_file:
        raise ValueError("token-classification needs --labels_file (and usually --mask_file)")
    given = given_classes(args)
    known = "".join(given) if given else None
    splits: dict[Split, LabelledSequences] = {}
    for split in SPLITS:
        splits[split], classes = read_residue_task(
            train_file, args.labels_file, args.mask_file, known, split, on_bad_row=args.on_bad_row
        )
        known = classes
    return splits, list(classes)
