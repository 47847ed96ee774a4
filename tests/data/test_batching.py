"""Streaming corpus, token-budget batches, cropping, and the per-process split of an epoch."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from protconv.data import FastaCorpus, TokenBudgetBatcher, shard
from protconv.tokenization import InvalidSequenceError

SLICE = Path(__file__).resolve().parents[2] / "examples" / "data" / "structural_proteins_4k.fasta.gz"


@pytest.fixture(scope="module")
def slice_sequences() -> list[str]:
    return list(FastaCorpus([SLICE]))


def test_budget_crop_and_padding_waste_on_real_proteins(slice_sequences) -> None:
    batcher = TokenBudgetBatcher(max_tokens=8192, max_length=512, special_tokens=2, pool_size=2000)
    batches = list(batcher.batches(slice_sequences))
    assert sorted(i for b in batches for i in b.indices) == list(range(len(slice_sequences)))
    padded = real = 0
    for batch in batches:
        width = max(len(s) for s in batch.sequences) + 2
        assert len(batch.sequences) * width <= 8192
        assert all(len(s) <= 510 for s in batch.sequences)
        padded += len(batch.sequences) * width
        real += sum(len(s) + 2 for s in batch.sequences)
    assert 1 - real / padded < 0.10, "padding waste must stay under 10%"
    for batch in batches:  # crops are windows of the original protein
        for index, residues in zip(batch.indices, batch.sequences, strict=True):
            assert residues in slice_sequences[index]


def test_plan_is_deterministic_and_changes_with_epoch(slice_sequences) -> None:
    batcher = TokenBudgetBatcher(max_tokens=4096, max_length=256, special_tokens=2, pool_size=1000, seed=3)
    first = list(batcher.batches(slice_sequences, epoch=0))
    assert first == list(batcher.batches(slice_sequences, epoch=0))
    assert first != list(batcher.batches(slice_sequences, epoch=1))


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_shards_cover_the_epoch_exactly_once_in_lockstep(slice_sequences, world_size) -> None:
    batcher = TokenBudgetBatcher(max_tokens=4096, max_length=256, special_tokens=2, pool_size=700)
    plan = list(batcher.batches(slice_sequences[:1003]))
    shards = [list(shard(plan, world_size, rank)) for rank in range(world_size)]
    assert len({len(s) for s in shards}) == 1, "every process must take the same number of steps"
    seen = [i for s in shards for b in s if not b.filler for i in b.indices]
    assert sorted(seen) == list(range(1003))
    assert all(not b.indices for s in shards for b in s if b.filler)


def test_corpus_policies_for_bad_records(tmp_path) -> None:
    path = tmp_path / "mixed.fasta.gz"
    path.write_bytes(gzip.compress(b">a\nMKT\n>b\nMK9T\n>c\nQQ\n"))
    assert list(FastaCorpus([path], invalid="skip")) == ["MKT", "QQ"]
    corpus = FastaCorpus([path], invalid="skip")
    list(corpus)
    assert corpus.skipped == 1
    assert list(FastaCorpus([path], invalid="X")) == ["MKT", "MKXT", "QQ"]
    with pytest.raises(InvalidSequenceError, match=r"mixed\.fasta\.gz:3 \(>b\): character '9'"):
        list(FastaCorpus([path]))


def test_empty_binary_and_missing_files_are_clear_errors(tmp_path) -> None:
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(InvalidSequenceError, match="no usable FASTA records"):
        list(FastaCorpus([empty]))
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InvalidSequenceError, match=r"weights\.bin:2: byte 0x80 at column 118 is not UTF-8 text"):
        list(FastaCorpus([binary]))
    with pytest.raises(FileNotFoundError, match=r"nope\.fasta"):
        FastaCorpus([tmp_path / "nope.fasta"])


def test_held_out_split_is_disjoint_and_complete(slice_sequences) -> None:
    train = list(FastaCorpus([SLICE], held_out_fraction=0.05, side="train"))
    validation = list(FastaCorpus([SLICE], held_out_fraction=0.05, side="validation"))
    assert len(train) + len(validation) == len(slice_sequences)
    assert not set(train) & set(validation)
    assert 0.03 < len(validation) / len(slice_sequences) < 0.07


def test_budget_must_hold_one_full_length_sequence() -> None:
    with pytest.raises(ValueError, match="at least max_length"):
        TokenBudgetBatcher(max_tokens=100, max_length=512)
