"""Epoch plans from record lengths: deterministic, every record exactly once per epoch on every world size,
lockstep with filler batches, small padding, a global shuffle, per-epoch crops and cluster sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protconv.data.batching import BatchShape, cut_sorted
from protconv.data.fasta_index import open_index
from protconv.data.plans import Clusters, crop_offsets, plan_epoch, plan_in_order

SLICE = Path(__file__).resolve().parents[2] / "examples" / "data" / "structural_proteins_4k.fasta.gz"


@pytest.fixture(scope="module")
def lengths() -> np.ndarray:
    return np.asarray(open_index(SLICE).lengths, dtype=np.int64)


def _greedy(widths: list[int], budget: int) -> list[int]:
    cuts, count = [0], 0
    for i, width in enumerate(widths):
        if count and (count + 1) * width > budget:
            cuts.append(i)
            count = 0
        count += 1
    return [*cuts, len(widths)]


def test_vectorised_cut_equals_the_greedy_loop() -> None:
    rng = np.random.default_rng(0)
    for budget in (64, 1000, 8192):
        widths = np.sort(rng.integers(1, 64, 3000))
        assert cut_sorted(widths, budget).tolist() == _greedy(widths.tolist(), budget)
    assert cut_sorted(np.zeros(0, dtype=np.int64), 10).tolist() == [0]


def test_plan_is_deterministic_and_changes_with_epoch_and_seed(lengths) -> None:
    shape = BatchShape(4096, 256, 2)
    first = plan_epoch(lengths, shape, seed=3, epoch=0, window=1000)
    again = plan_epoch(lengths, shape, seed=3, epoch=0, window=1000)
    assert all(np.array_equal(a, b) for a, b in zip(vars(first).values(), vars(again).values(), strict=True))
    assert not np.array_equal(first.order, plan_epoch(lengths, shape, seed=3, epoch=1, window=1000).order)
    assert not np.array_equal(first.order, plan_epoch(lengths, shape, seed=4, epoch=0, window=1000).order)


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_every_record_once_per_epoch_in_lockstep_with_fillers(lengths, world_size) -> None:
    shape = BatchShape(4096, 256, 2)
    subset = lengths[:1003]
    plan = plan_epoch(subset, shape, seed=0, epoch=2, window=300)
    rounds = plan.rounds(world_size)
    shares = [[plan.share(world_size, rank, i) for i in range(rounds)] for rank in range(world_size)]
    seen = np.concatenate([b for share in shares for b in share if b is not None])
    assert sorted(seen.tolist()) == list(range(1003)), "every record exactly once"
    fillers = [(rank, i) for rank, share in enumerate(shares) for i, b in enumerate(share) if b is None]
    assert len(fillers) == rounds * world_size - len(plan) < world_size
    assert all(i == rounds - 1 for _, i in fillers), "fillers only in the last round"
    widths = shape.widths(subset)
    for number in range(len(plan)):
        batch = plan.batch(number)
        assert len(batch) * widths[batch].max() <= 4096


def test_padding_stays_under_five_percent_on_real_proteins(lengths) -> None:
    for max_length, budget in ((512, 8192), (1024, 8192), (1024, 16384)):
        shape = BatchShape(budget, max_length, 2)
        real, padded = plan_epoch(lengths, shape, seed=0, epoch=0, window=100_000).tokens(lengths, shape)
        assert real == shape.widths(lengths).sum()
        assert 1 - real / padded < 0.05, (max_length, budget, 1 - real / padded)


def test_consecutive_records_are_spread_like_a_uniform_permutation(lengths) -> None:
    """Mean |position difference| of consecutive training records / N is 1/3 for a uniform permutation; a
    pool shuffle of a sorted file (clusters in file order) gives far less."""
    shape = BatchShape(8192, 512, 2)
    plan = plan_epoch(lengths, shape, seed=1, epoch=0, window=100_000)
    order = np.concatenate([plan.batch(b) for b in range(len(plan))])
    spread = np.abs(np.diff(order)).mean() / len(order)
    assert abs(spread - 1 / 3) < 0.02


def test_crops_are_windows_that_vary_by_epoch_and_record() -> None:
    lengths = np.array([100, 2000, 2000, 50])
    records = np.arange(4)
    first = crop_offsets(lengths, 510, seed=0, stream=0, records=records)
    assert first[0] == 0 and first[3] == 0 and 0 <= first[1] <= 1490 and 0 <= first[2] <= 1490
    assert np.array_equal(first, crop_offsets(lengths, 510, 0, 0, records))
    assert first[1] != first[2]
    later = [crop_offsets(lengths, 510, 0, epoch, records)[1] for epoch in range(1, 20)]
    assert len(set(later)) > 15
    many = crop_offsets(np.full(20000, 1000), 500, 0, 0, np.arange(20000))
    assert many.min() == 0 and many.max() == 500 and abs(many.mean() - 250) < 10, "uniform over the windows"


def test_cluster_sampling_draws_one_member_per_cluster_each_epoch(lengths) -> None:
    labels = np.arange(len(lengths)) // 4  # clusters of four records
    clusters = Clusters.from_labels(labels)
    assert len(clusters) == len(lengths) // 4
    shape = BatchShape(8192, 512, 2)
    picks = []
    for epoch in range(3):
        plan = plan_epoch(lengths, shape, seed=0, epoch=epoch, window=100_000, clusters=clusters)
        chosen = np.sort(np.concatenate([plan.batch(b) for b in range(len(plan))]))
        assert sorted(labels[chosen].tolist()) == list(range(len(clusters))), "one member of every cluster"
        picks.append(chosen)
    assert not np.array_equal(picks[0], picks[1]), "a new draw every epoch"
    plan = plan_epoch(lengths, shape, seed=0, epoch=0, window=100_000, clusters=clusters)
    assert np.array_equal(np.sort(plan.order), picks[0]), "seeded"
    members_drawn = np.bincount(np.concatenate(picks) % 4, minlength=4)
    assert members_drawn.min() > 0.2 * members_drawn.sum()


def test_validation_plan_keeps_its_records_sorted_by_length(lengths) -> None:
    shape = BatchShape(4096, 256, 2)
    plan = plan_in_order(np.arange(500), lengths, shape)
    assert sorted(plan.order.tolist()) == list(range(500))
    widths = shape.widths(lengths[plan.order])
    assert (np.diff(widths) >= 0).all()
    with pytest.raises(ValueError, match="at least max_length"):
        BatchShape(100, 512)
