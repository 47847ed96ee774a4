"""Masked-LM perplexity on a held-out FASTA, exact and token-weighted: every residue masked alone once,
``exp(-sum of log p(residue) / number of residues)`` over the whole file (long proteins weigh by their length),
with a bootstrap standard error over sequences."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..data.fasta import read_fasta
from ..inference.common import ModelSession
from ..inference.score import pseudo_log_likelihood
from ..metrics import bootstrap_stderr
from .results import Record


def read_sequences(path: Path) -> list[str]:
    return [record.sequence for record in read_fasta(path)]


def perplexity_records(
    name: str, sequences: list[str], model: str, session: ModelSession, network: torch.nn.Module, tokens: int,
    samples: int,
) -> list[Record]:  # fmt: skip
    log_likelihoods = np.array([pseudo_log_likelihood(session, network, s, tokens) for s in sequences])
    lengths = np.array([len(s) for s in sequences], dtype=np.float64)

    def perplexity(index: np.ndarray) -> float:
        return math.exp(-float(log_likelihoods[index].sum()) / float(lengths[index].sum()))

    value = perplexity(np.arange(len(sequences)))
    return [Record(name, model, None, "perplexity", value, bootstrap_stderr(perplexity, len(sequences), samples))]
