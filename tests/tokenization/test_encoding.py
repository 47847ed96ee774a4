"""The one fast encoder: the tokenizer's ids and framing at numpy speed, the tokenizer itself when it cannot."""

from __future__ import annotations

import random

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

import protconv
from protconv.modeling.vocabulary import RESIDUE_CHARACTERS
from protconv.tokenization.encoding import NotOneTokenPerResidueError, SequenceEncoder, tokenizer_framing


def _reference(tokenizer, sequences: list[str]) -> dict[str, torch.Tensor]:
    batch = tokenizer(sequences, padding=True, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def test_the_table_gives_the_tokenizers_ids_and_padding(tokenizer) -> None:
    rng = random.Random(0)
    sequences = ["".join(rng.choices(RESIDUE_CHARACTERS, k=rng.randint(1, 40))) for _ in range(50)]
    encoder = SequenceEncoder(tokenizer)
    assert encoder.fast and encoder.special_tokens == 2
    table = encoder.encode_table(sequences)
    assert table is not None
    expected = _reference(tokenizer, sequences)
    assert torch.equal(table[0], expected["input_ids"]) and torch.equal(table[1], expected["attention_mask"])
    assert table[0].dtype == table[1].dtype == torch.int64


def test_what_the_table_cannot_encode_goes_through_the_tokenizer(tokenizer) -> None:
    encoder = SequenceEncoder(tokenizer)
    for sequences in (["MKT", "mkt"], ["MKTÅ"], ["MK1T"]):
        assert encoder.encode_table(sequences) is None
        encoded = encoder(sequences)
        expected = _reference(tokenizer, sequences)
        assert all(torch.equal(encoded[key], expected[key]) for key in expected)


def test_a_left_padding_tokenizer_never_takes_the_table() -> None:
    tokenizer = protconv.build_tokenizer()  # not the session's: this one is changed
    tokenizer.padding_side = "left"
    encoder = SequenceEncoder(tokenizer)
    assert not encoder.fast and encoder.encode_table(["MK", "MKTY"]) is None
    assert torch.equal(encoder(["MK", "MKTY"])["input_ids"], _reference(tokenizer, ["MK", "MKTY"])["input_ids"])


def test_framing_is_read_off_the_tokenizer(tokenizer) -> None:
    framing = tokenizer_framing(tokenizer)
    assert framing.prefix_ids == (tokenizer.cls_token_id,) and framing.suffix_ids == (tokenizer.eos_token_id,)
    assert (framing.prefix, framing.suffix, framing.special_tokens) == (1, 1, 2)


def test_a_tokenizer_without_one_token_per_residue_is_refused() -> None:
    words = Tokenizer(WordLevel({"[UNK]": 0, "[PAD]": 1, "ACD": 2}, unk_token="[UNK]"))
    words.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]")
    with pytest.raises(NotOneTokenPerResidueError, match="into 1 non-special tokens"):
        SequenceEncoder(tokenizer)
