"""One fast encoder of residue strings, framed exactly as the tokenizer frames them, for every hot path.

Pretraining's collators and the inference commands encode millions of clean residue strings. Going through the
tokenizer's Python lists costs about as much as a small model's forward on a CPU; a byte -> id table gives the
same ids at numpy speed. The table and the framing (the special tokens before and after the residues) are read
off the tokenizer itself and checked against it on every residue character when the encoder is built, so a
tokenizer the table cannot reproduce (not one token per residue, left padding, no pad token) never takes the
fast path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..modeling.vocabulary import RESIDUE_CHARACTERS


class NotOneTokenPerResidueError(ValueError):
    """The tokenizer does not turn each residue into one token, so positions and residues cannot be aligned."""


@dataclass(frozen=True)
class Framing:
    """The special-token ids the tokenizer puts before (``<cls>``) and after (``<eos>``) a sequence's residues."""

    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]

    @property
    def prefix(self) -> int:
        return len(self.prefix_ids)

    @property
    def suffix(self) -> int:
        return len(self.suffix_ids)

    @property
    def special_tokens(self) -> int:
        """Tokens added to every sequence: what a token budget or a position limit must count on top."""
        return self.prefix + self.suffix


def tokenizer_framing(tokenizer: PreTrainedTokenizerBase) -> Framing:
    """The tokenizer's framing, read off its encoding of three residues.

    Raises ``NotOneTokenPerResidueError`` when the residues do not come out as three non-special tokens.
    """
    encoded = tokenizer("ACD", return_special_tokens_mask=True)
    ids, special = list(encoded["input_ids"]), list(encoded["special_tokens_mask"])
    residues = len(special) - sum(special)
    if residues != 3:
        raise NotOneTokenPerResidueError(
            f"the model's tokenizer turns the 3 residues 'ACD' into {residues} non-special tokens; protconv needs "
            "one token per residue"
        )
    prefix = special.index(0)
    return Framing(tuple(ids[:prefix]), tuple(ids[prefix + 3 :]))


class SequenceEncoder:
    """Right-padded ``input_ids`` and ``attention_mask`` of whole residue strings (never truncated)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.framing = tokenizer_framing(tokenizer)
        vocab = tokenizer.get_vocab()
        self.table = np.full(256, -1, dtype=np.int64)
        for char in RESIDUE_CHARACTERS:
            if char in vocab:
                self.table[ord(char)] = vocab[char]
        reference = list(tokenizer(RESIDUE_CHARACTERS)["input_ids"])
        own = [*self.framing.prefix_ids, *self._residue_ids(RESIDUE_CHARACTERS).tolist(), *self.framing.suffix_ids]
        #: Whether the table reproduces the tokenizer; when not, every call goes through the tokenizer.
        self.fast = own == reference and tokenizer.padding_side == "right" and tokenizer.pad_token_id is not None

    @property
    def special_tokens(self) -> int:
        return self.framing.special_tokens

    def _residue_ids(self, sequence: str) -> np.ndarray:
        return self.table[np.frombuffer(sequence.encode(), np.uint8)]

    def encode_table(self, sequences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The table's encoding on the CPU, or ``None`` when it cannot give the tokenizer's (a character outside
        the residue alphabet, non-ASCII text, or a tokenizer the table does not reproduce)."""
        if not self.fast or not all(sequence.isascii() for sequence in sequences):
            return None
        prefix, special = self.framing.prefix, self.framing.special_tokens
        width = max(len(sequence) for sequence in sequences) + special
        ids = np.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        for row, sequence in enumerate(sequences):
            residues = self._residue_ids(sequence)
            if (residues < 0).any():
                return None
            end = prefix + len(sequence)
            ids[row, :prefix] = self.framing.prefix_ids
            ids[row, prefix:end] = residues
            ids[row, end : end + self.framing.suffix] = self.framing.suffix_ids
            mask[row, : len(sequence) + special] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def __call__(self, sequences: Sequence[str], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The table's encoding when it applies, else the tokenizer's own (same ids, slower), on ``device``."""
        encoded = self.encode_table(sequences)
        if encoded is None:
            batch = self.tokenizer(list(sequences), padding=True, truncation=False, return_tensors="pt")
            encoded = batch["input_ids"], batch["attention_mask"]
        input_ids, attention_mask = encoded
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
