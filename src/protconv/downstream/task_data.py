"""Downstream-task data: which files make the train/valid/test splits (``TaskDataArguments``, shared by
fine-tuning and the baselines so both see one split), and the tokenised datasets and padding collator in the form
``transformers.Trainer`` expects. The file formats themselves are read by ``protconv.data.task_files``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from ..data.task_files import (
    LabelledSequences,
    TaskDataError,
    csv_has_split_column,
    read_csv_task,
    read_residue_task,
    report_skipped,
)
from ..modeling.vocabulary import IGNORE_INDEX

logger = logging.getLogger(__name__)

TaskType = Literal["regression", "classification", "token-classification"]
SPLITS = ("train", "valid", "test")


@dataclass
class TaskDataArguments:
    """Which task and which files: shared by fine-tuning and the supervised baselines, so both see one split."""

    task: TaskType = field(metadata={"help": "regression | classification | token-classification"})
    train_file: str = field(metadata={"help": "CSV (TAPE seq,label or FLIP) or, for token tasks, sequences FASTA"})
    validation_file: str | None = field(default=None, metadata={"help": "CSV of the validation split (TAPE)"})
    test_file: str | None = field(default=None, metadata={"help": "CSV of the test split (TAPE)"})
    labels_file: str | None = field(default=None, metadata={"help": "token tasks: per-residue labels FASTA"})
    mask_file: str | None = field(default=None, metadata={"help": "token tasks: 0/1 mask FASTA (0 = ignored)"})
    classes: str | None = field(default=None, metadata={"help": "token tasks: label characters in id order"})
    sequence_column: str | None = None
    label_column: str | None = None
    on_bad_row: Literal["skip", "error"] = "skip"
    max_train_samples: int | None = field(default=None, metadata={"help": "subsample training rows (seeded)"})


class TaskDataset(Dataset):
    """Tokenises on access; per-residue labels are aligned to tokens (special tokens get -100).

    ``label_scale`` = (mean, std) normalises regression targets; the fine-tuning path inverts it at prediction.
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


class TaskCollator:
    """Pads inputs with the tokenizer and labels to match: -100 for per-residue labels, a tensor otherwise."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, task: TaskType) -> None:
        self.tokenizer, self.task = tokenizer, task

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
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


def load_task_splits(args: TaskDataArguments, seed: int = 0) -> tuple[dict[str, LabelledSequences], str | None]:
    """train/valid/test data (absent splits omitted) and, for token tasks, the class characters.

    Under ``on_bad_row="skip"`` every skipped row (file, line, reason) and a count per split are logged as one
    warning (``protconv.downstream.task_data``; on stderr when logging is not configured). A training split left
    without a single usable row is an error.
    """
    splits, classes = _read_splits(args)
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
    message = f"{args.train_file}: no usable training rows"
    if train is not None and train.skipped:
        message += f" ({len(train.skipped)} bad rows skipped; the first: {train.skipped[0]})"
    return message


def _read_splits(args: TaskDataArguments) -> tuple[dict[str, LabelledSequences], str | None]:
    if args.task == "token-classification":
        if not args.labels_file:
            raise ValueError("token-classification needs --labels_file (and usually --mask_file)")
        splits, classes = {}, args.classes
        for split in SPLITS:
            splits[split], classes = read_residue_task(
                args.train_file, args.labels_file, args.mask_file, classes, split, on_bad_row=args.on_bad_row
            )
        return splits, classes
    kind = "float" if args.task == "regression" else "int"
    options = {
        "label_kind": kind,
        "sequence_column": args.sequence_column,
        "label_column": args.label_column,
        "on_bad_row": args.on_bad_row,
    }
    if csv_has_split_column(args.train_file):
        return {split: read_csv_task(args.train_file, split=split, **options) for split in SPLITS}, None
    files = {"train": args.train_file, "valid": args.validation_file, "test": args.test_file}
    return {split: read_csv_task(path, **options) for split, path in files.items() if path}, None


def subsample(data: LabelledSequences, count: int, seed: int) -> LabelledSequences:
    keep = sorted(np.random.default_rng(seed).choice(len(data), size=min(count, len(data)), replace=False))
    return LabelledSequences(
        [data.sequences[i] for i in keep], [data.labels[i] for i in keep], [data.names[i] for i in keep], data.skipped
    )
