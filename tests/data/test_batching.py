"""Streaming corpus, token-budget batches, cropping, and the per-process split of an epoch."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from protconv.data import FastaCorpus, TokenBudgetBatcher, shard
from protconv.data.batching import BatchShape, cut_sorted, longest_first_batches
from protconv.inference.common import plan_batches
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


def _former_cut(widths: list[int], max_tokens: int) -> list[list[int]]:
    """``TokenBudgetBatcher._cut`` before it went through ``cut_sorted``: the newest member sets the width."""
    groups: list[list[int]] = []
    group: list[int] = []
    for i, width in enumerate(widths):
        if group and (len(group) + 1) * width > max_tokens:
            groups.append(group)
            group = []
        group.append(i)
    return [*groups, group] if group else groups


def _former_plan_batches(lengths: list[int], max_tokens: int, special_tokens: int) -> list[list[int]]:
    """``protconv.inference.common.plan_batches`` as it was written before ``longest_first_batches``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    group: list[int] = []
    width = 0
    for i in order:
        if group and (len(group) + 1) * width > max_tokens:
            batches.append(group)
            group = []
        if not group:
            width = lengths[i] + special_tokens
        group.append(i)
    return [*batches, group] if group else batches


def test_the_batcher_cuts_as_its_former_loop_did() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        special = int(rng.integers(0, 3))
        max_length = int(rng.integers(special + 1, 80))
        batcher = TokenBudgetBatcher(int(rng.integers(max_length, 400)), max_length, special, shuffle=False)
        cropped = ["A" * int(n) for n in rng.integers(0, max_length - special + 1, int(rng.integers(0, 60)))]
        order = sorted(rng.permutation(len(cropped)).tolist(), key=lambda i: len(cropped[i]))
        expected = [[order[k] for k in group] for group in _former_cut(
            [len(cropped[i]) + special for i in order], batcher.max_tokens
        )]  # fmt: skip
        assert list(batcher._cut(order, cropped)) == expected
    assert batcher.shape == BatchShape(batcher.max_tokens, batcher.max_length, batcher.special_tokens)


def test_longest_first_batches_are_those_of_plan_batches() -> None:
    rng = np.random.default_rng(2)
    for case in range(500):
        lengths = rng.integers(0, 300 if case % 2 else 20, int(rng.integers(0, 80))).tolist()
        max_tokens, special = int(rng.integers(1, 600)), int(rng.integers(0, 3))
        expected = _former_plan_batches(lengths, max_tokens, special)
        assert longest_first_batches(lengths, max_tokens, special) == expected
        assert plan_batches(lengths, max_tokens, special) == expected
    for bad in (0, -3):
        with pytest.raises(ValueError, match="max_tokens_per_batch must be positive"):
            longest_first_batches([3, 4], bad)


def test_cut_sorted_either_way_and_oversized_records() -> None:
    assert cut_sorted(np.array([2, 3, 3, 5]), 9).tolist() == [0, 3, 4]
    assert cut_sorted(np.array([5, 3, 3, 2]), 9).tolist() == [0, 1, 4]
    assert cut_sorted(np.array([12, 4, 4, 4]), 10, oversized="alone").tolist() == [0, 1, 3, 4]
    with pytest.raises(ValueError, match="a record of 12 tokens does not fit max_tokens=10"):
        cut_sorted(np.array([4, 12]), 10)
    with pytest.raises(ValueError, match="sorted one way"):
        cut_sorted(np.array([3, 5, 2]), 10)
    with pytest.raises(ValueError, match="oversized must be 'error' or 'alone', got 'crop'"):
        cut_sorted(np.array([3]), 10, oversized="crop")  # type: ignore[arg-type]
