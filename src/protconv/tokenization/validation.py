"""Input checks for protconv's own entry points (FASTA readers, CLI, pipelines).

The tokenizer itself is lenient (unknown characters become ``<unk>``, as any HF tokenizer does); the entry
points that read user data are strict, so that a typo or a nucleotide file is reported instead of learned from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from ..modeling.vocabulary import RESIDUE_CHARACTERS

UnknownPolicy = Literal["error", "X"]

_WHITESPACE = re.compile(r"\s+")
# Checked before upper-casing, in either case: str.upper() maps some non-ASCII letters to ASCII ones
# ('ß' -> 'SS', dotless 'ı' -> 'I'), which must be reported, not read as residues.
_NOT_RESIDUE = re.compile(f"[^{re.escape(RESIDUE_CHARACTERS + RESIDUE_CHARACTERS.lower())}]")


class InvalidSequenceError(ValueError):
    """A sequence holds a character outside the amino-acid alphabet, or is empty.

    ``position`` is the 1-based residue position of the bad character (None when no single residue is at fault).
    """

    position: int | None = None


def clean_sequence(
    sequence: str,
    record: str = "<sequence>",
    unknown: UnknownPolicy = "error",
    locate: Callable[[int], int] | None = None,
) -> str:
    """Upper-case ``sequence``, drop whitespace and check every character against the vocabulary.

    ``record`` names the sequence in error messages (a FASTA header, ``file:line``...). ``unknown="X"`` maps
    characters outside the alphabet to ``X`` instead of raising. Positions in messages are 1-based residues
    of the cleaned sequence (whitespace removed), the convention of mutation names such as ``H24C``; the
    error's ``position`` attribute holds it. ``locate``, when given, maps that position to the file line that
    holds the residue (e.g. ``FastaEntry.line_of``), which the message then names too.
    """
    if unknown not in ("error", "X"):
        raise ValueError(f"unknown must be 'error' or 'X', got {unknown!r}")
    cleaned = _WHITESPACE.sub("", sequence)
    if not cleaned:
        raise InvalidSequenceError(f"{record}: empty sequence")
    bad = _NOT_RESIDUE.search(cleaned)
    if bad is None:
        return cleaned.upper()
    if unknown == "X":
        return _NOT_RESIDUE.sub("X", cleaned).upper()
    position = bad.start() + 1
    line = f" (line {locate(position)})" if locate is not None else ""
    error = InvalidSequenceError(
        f"{record}: character {bad.group()!r} at position {position}{line} is not an amino acid "
        f"(allowed: {RESIDUE_CHARACTERS}); pass --unknown X (unknown='X' in Python) to map such characters to X"
    )
    error.position = position
    raise error
