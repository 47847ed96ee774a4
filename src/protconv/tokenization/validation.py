"""Input checks for protconv's own entry points (FASTA readers, CLI, pipelines).

The tokenizer itself is lenient (unknown characters become ``<unk>``, as any HF tokenizer does); the entry
points that read user data are strict, so that a typo or a nucleotide file is reported instead of learned from.
"""

from __future__ import annotations

import re
from typing import Literal

from ..modeling.vocabulary import RESIDUE_CHARACTERS

UnknownPolicy = Literal["error", "X"]

_WHITESPACE = re.compile(r"\s+")
_NOT_RESIDUE = re.compile(f"[^{re.escape(RESIDUE_CHARACTERS)}]")


class InvalidSequenceError(ValueError):
    """A sequence holds a character outside the amino-acid alphabet, or is empty."""


def clean_sequence(sequence: str, record: str = "<sequence>", unknown: UnknownPolicy = "error") -> str:
    """Upper-case ``sequence``, drop whitespace and check every character against the vocabulary.

    ``record`` names the sequence in error messages (a FASTA header, ``file:line``...). ``unknown="X"`` maps
    characters outside the alphabet to ``X`` instead of raising. Positions in messages are 1-based residues
    of the cleaned sequence, the convention of mutation names such as ``H24C``.
    """
    if unknown not in ("error", "X"):
        raise ValueError(f"unknown must be 'error' or 'X', got {unknown!r}")
    cleaned = _WHITESPACE.sub("", sequence).upper()
    if not cleaned:
        raise InvalidSequenceError(f"{record}: empty sequence")
    bad = _NOT_RESIDUE.search(cleaned)
    if bad is None:
        return cleaned
    if unknown == "X":
        return _NOT_RESIDUE.sub("X", cleaned)
    raise InvalidSequenceError(
        f"{record}: character {bad.group()!r} at position {bad.start() + 1} is not an amino acid "
        f"(allowed: {RESIDUE_CHARACTERS}); pass unknown='X' to map such characters to X"
    )
