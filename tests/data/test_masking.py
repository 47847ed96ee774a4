"""BERT masking for proteins: rates, never special tokens, replacements from amino acids only, exact framing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import protconv
from protconv.data import Batch, MaskedLMCollator
from protconv.data.masking import IGNORE_INDEX
from protconv.modeling.vocabulary import RESIDUE_CHARACTERS, STANDARD_AMINO_ACIDS


@pytest.mark.parametrize(("add_cls", "add_eos"), [(True, True), (False, False), (True, False)])
def test_encoding_matches_the_tokenizer(real_proteins, add_cls, add_eos) -> None:
    tokenizer = protconv.build_tokenizer(add_cls=add_cls, add_eos=add_eos)
    collator = MaskedLMCollator(tokenizer)
    input_ids, attention_mask = collator.encode(real_proteins)
    expected = tokenizer(real_proteins, padding=True, return_tensors="pt")
    assert torch.equal(input_ids, expected["input_ids"])
    assert torch.equal(attention_mask, expected["attention_mask"])
    assert collator.special_tokens_per_sequence == add_cls + add_eos


def test_masking_rates_and_what_is_never_masked(tokenizer, real_proteins) -> None:
    collator = MaskedLMCollator(tokenizer)
    batch = collator(Batch(tuple(real_proteins * 20), ()), seed=0)
    original, _ = collator.encode(real_proteins * 20)
    labels, masked = batch["labels"], batch["input_ids"]
    selected = labels != IGNORE_INDEX
    residues = ~torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    assert not (selected & ~residues).any(), "a special or padding token was selected"
    assert torch.equal(labels[selected], original[selected])
    assert selected.sum() / residues.sum() == pytest.approx(0.15, abs=0.01)
    as_mask = masked[selected] == tokenizer.mask_token_id
    unchanged = masked[selected] == original[selected]
    replaced = ~as_mask & ~unchanged
    assert as_mask.float().mean() == pytest.approx(0.8, abs=0.02)
    # A random draw equal to the original residue counts as unchanged: about 10% + 10%/20.
    assert replaced.float().mean() == pytest.approx(0.1 * 19 / 20, abs=0.015)
    amino_acids = torch.tensor(tokenizer.convert_tokens_to_ids(list(STANDARD_AMINO_ACIDS)))
    assert torch.isin(masked[selected][replaced], amino_acids).all()
    assert torch.equal(masked[~selected], original[~selected]), "unselected positions must be untouched"
    assert torch.equal(batch["attention_mask"], (original != tokenizer.pad_token_id).long())


def test_same_seed_same_masks_and_filler_carries_no_loss(tokenizer, real_proteins) -> None:
    collator = MaskedLMCollator(tokenizer)
    batch = Batch(tuple(real_proteins), tuple(range(len(real_proteins))))
    first, again, other = collator(batch, 7), collator(batch, 7), collator(batch, 8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["labels"], other["labels"])
    filler = collator(Batch(tuple(real_proteins[:1]), (), filler=True), 7)
    assert (filler["labels"] == IGNORE_INDEX).all()


def test_bad_rates_are_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match="mlm_probability"):
        MaskedLMCollator(tokenizer, mlm_probability=0)
    with pytest.raises(ValueError, match="mask_fraction"):
        MaskedLMCollator(tokenizer, mask_fraction=0.9, random_fraction=0.2)


def _lookup_encoding(tokenizer, sequences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The collator's encoding before it went through ``SequenceEncoder``: a byte table of the one-character
    tokens and the framing of one residue, padded with ``pad_token_id``."""
    lookup = np.full(256, -1, dtype=np.int64)
    for token, index in tokenizer.get_vocab().items():
        if len(token) == 1 and ord(token) < 256:
            lookup[ord(token)] = index
    ids = tokenizer("A")["input_ids"]
    at = ids.index(tokenizer.convert_tokens_to_ids("A"))
    prefix, suffix = np.array(ids[:at], dtype=np.int64), np.array(ids[at + 1 :], dtype=np.int64)
    rows = [np.concatenate([prefix, lookup[np.frombuffer(s.encode(), np.uint8)], suffix]) for s in sequences]
    out = np.full((len(rows), max(len(row) for row in rows)), tokenizer.pad_token_id, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    result = torch.from_numpy(out)
    return result, (result != tokenizer.pad_token_id).long()


@pytest.mark.parametrize(("add_cls", "add_eos"), [(True, True), (False, False), (False, True)])
def test_encoding_is_bit_identical_to_the_former_lookup(add_cls, add_eos) -> None:
    tokenizer = protconv.build_tokenizer(add_cls=add_cls, add_eos=add_eos)
    collator = MaskedLMCollator(tokenizer)
    rng = np.random.default_rng(0)
    for _ in range(20):
        lengths = rng.integers(1, 40, int(rng.integers(1, 9)))
        sequences = ["".join(rng.choice(list(RESIDUE_CHARACTERS), int(n))) for n in lengths]
        input_ids, attention_mask = collator.encode(sequences)
        expected_ids, expected_mask = _lookup_encoding(tokenizer, sequences)
        assert input_ids.dtype == expected_ids.dtype and attention_mask.dtype == expected_mask.dtype
        assert torch.equal(input_ids, expected_ids) and torch.equal(attention_mask, expected_mask)


def test_a_character_outside_the_table_is_an_error_and_other_tokenizers_encode_themselves(real_proteins) -> None:
    tokenizer = protconv.build_tokenizer()
    with pytest.raises(ValueError, match="outside the vocabulary; read it through read_fasta first"):
        MaskedLMCollator(tokenizer).encode(["MKT1"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        MaskedLMCollator(tokenizer).encode(["MKTé"])
    tokenizer.padding_side = "left"  # a tokenizer the table cannot reproduce: its own encoding is used
    collator = MaskedLMCollator(tokenizer)
    assert not collator.encoder.fast
    input_ids, attention_mask = collator.encode(real_proteins)
    expected = tokenizer(real_proteins, padding=True, return_tensors="pt")
    assert torch.equal(input_ids, expected["input_ids"]) and torch.equal(attention_mask, expected["attention_mask"])
