"""Whether the task's sequences fit the model, checked before anything is trained.

Conv and rotary Performer models have no length limit, so sequences run whole unless ``--max_length`` asks for
truncation; a model with learned absolute positions refuses a longer input here, naming it, instead of failing
mid-run. The position limit itself is ``model_source.position_limit``, the rule every command shares.
"""

from __future__ import annotations

from collections.abc import Mapping

from transformers import PretrainedConfig

from ..data.task_files import LabelledSequences
from ..data.tasks.vocabulary import Split
from ..model_source import position_limit, position_limit_reason
from .task_data import count_truncated

__all__ = ["SequenceLengthError", "check_lengths"]


class SequenceLengthError(ValueError):
    """A sequence is longer than the model can take (learned absolute positions), and no truncation was asked."""


def check_lengths(
    splits: Mapping[Split, LabelledSequences], config: PretrainedConfig, special_tokens: int, max_length: int | None
) -> dict[Split, int]:
    """How many sequences of each split ``max_length`` truncates. Without ``max_length``, a sequence longer than
    the model's position limit raises ``SequenceLengthError`` naming it (and how many more there are)."""
    limit = position_limit(config)
    if max_length is not None:
        if max_length <= special_tokens:
            raise ValueError(
                f"--max_length {max_length} leaves no room for a residue ({special_tokens} special tokens)"
            )
        if limit is not None and max_length > limit:
            raise SequenceLengthError(
                f"--max_length {max_length} exceeds this model's {position_limit_reason(config)}; "
                f"use --max_length {limit} or less"
            )
        return {split: count_truncated(data, max_length, special_tokens) for split, data in splits.items()}
    if limit is not None:
        for split, data in splits.items():
            over = [i for i, sequence in enumerate(data.sequences) if len(sequence) + special_tokens > limit]
            if over:
                first = over[0]
                raise SequenceLengthError(
                    f"{data.names[first]} ({split} split): {len(data.sequences[first]) + special_tokens} tokens "
                    f"(special tokens included) exceed this model's {position_limit_reason(config)}; "
                    f"{len(over)} {split} sequence(s) are too long. Pass --max_length {limit} "
                    "to truncate them, or use a model with rotary positions or a Conv model"
                )
    return dict.fromkeys(splits, 0)
