"""Tokenised downstream-task datasets and their padding collator, in the form ``transformers.Trainer`` expects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from ..modeling.heads import IGNORE_INDEX
from .tasks import LabelledSequences

TaskType = Literal["regression", "classification", "token-classification"]


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
