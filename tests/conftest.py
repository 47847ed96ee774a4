"""Shared fixtures: tiny model configs (the suite must stay fast on 2 CPU cores) and real proteins."""

from __future__ import annotations

import pytest
import torch

import protconv
from protconv.data import read_fasta
from tests.helpers import DATA


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tokenizer():
    return protconv.build_tokenizer()


@pytest.fixture(scope="session")
def real_proteins() -> list[str]:
    """15 real UniRef50 proteins, 71 to 935 residues (tests/data/SOURCES.md)."""
    return [record.sequence for record in read_fasta(DATA / "some_proteins.fasta")]


@pytest.fixture
def tiny_conv_config() -> protconv.ConvConfig:
    return protconv.ConvConfig(hidden_size=32, intermediate_size=16, num_hidden_layers=4, max_dilation=4)


@pytest.fixture
def tiny_performer_config() -> protconv.PerformerConfig:
    """Two 16-dimensional heads and 32 random features: every code path of the Performer, in milliseconds."""
    return protconv.PerformerConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, nb_features=32
    )
