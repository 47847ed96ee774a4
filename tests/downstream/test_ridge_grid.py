"""The ridge / logistic baseline says so when its best L2 strength is an end of its grid."""

from __future__ import annotations

import logging

import pytest

from protconv.data.task_files import read_csv_task
from protconv.downstream.baselines import linear_baseline, warn_at_grid_edge
from tests.helpers import DATA


@pytest.fixture(scope="module")
def gb1_splits():
    path = DATA / "gb1_three_vs_rest_slice.csv"
    return {split: read_csv_task(path, split=split) for split in ("train", "valid", "test")}


def test_the_best_alpha_at_the_edge_of_the_grid_is_a_warning(gb1_splits, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="protconv.downstream.baselines"):
        result = linear_baseline("regression", gb1_splits)  # GB1's slice picks the strongest of the default grid
    assert result.chosen == "alpha=1000"
    assert "the best alpha on valid, 1000, is the largest of the grid 0.01, 0.1, 1, 10, 100, 1000" in caplog.text


def test_an_inside_choice_or_no_choice_is_silent(gb1_splits, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="protconv.downstream.baselines"):
        warn_at_grid_edge("regression", 1.0, (0.1, 1.0, 10.0))
        linear_baseline("regression", {"train": gb1_splits["train"], "test": gb1_splits["test"]})  # no valid split
    assert "of the grid" not in caplog.text
    warn_at_grid_edge("classification", 0.1, (0.1, 1.0))
    assert "is the smallest of the grid 0.1, 1" in caplog.text
