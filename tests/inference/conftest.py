"""Tiny saved model folders for the inference tests (saved with ``hub.save_hub_folder``, as users get them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import protconv
from protconv.hub import save_hub_folder
from tests.helpers import DATA

FASTA = DATA / "some_proteins.fasta"  # 15 real proteins, 71 to 935 residues
FEW = DATA / "few_proteins.fasta"


def save_model(model: torch.nn.Module, folder: Path, carp_framing: bool = False) -> Path:
    """``model`` (eval mode) saved with protconv's tokenizer, CARP-style (no <cls>/<eos>) when asked."""
    tokenizer = protconv.build_tokenizer(add_cls=not carp_framing, add_eos=not carp_framing)
    return save_hub_folder(model.eval(), tokenizer, folder)


@pytest.fixture
def conv_folder(tmp_path, tiny_conv_config) -> Path:
    return save_model(protconv.ConvForMaskedLM(tiny_conv_config), tmp_path / "conv")


@pytest.fixture
def carp_folder(tmp_path, tiny_conv_config) -> Path:
    return save_model(protconv.ConvForMaskedLM(tiny_conv_config), tmp_path / "carp", carp_framing=True)


@pytest.fixture
def performer_folder(tmp_path, tiny_performer_config) -> Path:
    return save_model(protconv.PerformerForMaskedLM(tiny_performer_config), tmp_path / "performer")


@pytest.fixture(params=["conv", "carp-framing", "performer"])
def any_folder(request) -> Path:
    """Each family, and a Conv model with a CARP tokenizer (no <cls>/<eos>)."""
    name = {"conv": "conv_folder", "carp-framing": "carp_folder", "performer": "performer_folder"}[request.param]
    return request.getfixturevalue(name)


def write_fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in records), encoding="utf-8")
    return path
