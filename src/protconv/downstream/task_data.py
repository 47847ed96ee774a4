"""Downstream-task data as ``transformers.Trainer`` takes it: the tokenised dataset and the padding collator, over
the splits that :mod:`protconv.data.tasks` reads (``TaskDataArguments``, shared by fine-tuning and the baselines so
both see one split; files or a ``datasets`` dataset, checked row by row with one set of rules). Class labels
become ids numbered over all splits at once, and their names are returned so that the fine-tuned model's
``config.id2label`` carries them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset
from transformers import BatchEncoding, PreTrainedTokenizerBase

from ..data.tasks.arguments import TaskDataArguments
from ..data.tasks.dataset_splits import VALIDATION_SPLIT_NAMES  # noqa: F401  (re-exported for one release)
from ..data.tasks.rows import LabelledSequences, subsample  # noqa: F401  (subsample: re-exported for one release)
from ..data.tasks.splits import read_task_splits
from ..data.tasks.vocabulary import Split, TaskType
from ..modeling.vocabulary import IGNORE_INDEX

logger = logging.getLogger(__name__)


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
    id order (for ``config.id2label``), read by :func:`protconv.data.tasks.splits.read_task_splits`.

    ``num_labels`` (classification): the number of classes expected; an error if the data has another number.
    Under ``on_bad_row="skip"`` every skipped row (file or dataset split, line or row, reason) and a count per
    split are logged as one warning (``protconv.downstream.task_data``, the logger name users filter on; on stderr
    when logging is not configured). A training split left without a single usable row is an error.
    """
    splits, classes, skipped = read_task_splits(args, seed, num_labels)
    if skipped:
        logger.warning(skipped)
    return splits, classes
