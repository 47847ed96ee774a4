"""The held-out rule: which sequences of a corpus form its validation side.

A sequence is held out when the CRC-32 of ``f"{seed}:{residues}"`` falls in the first ``fraction`` of
``HASH_BUCKETS`` buckets. The rule is a pure function of the residues, so the split is stable across epochs,
processes and restarts without storing anything, and a protein that occurs twice never lands on both sides. The
streamed corpora apply it per sequence; the FASTA index and the dataset cache store the hash of every record
(seed 0) and apply it to all of them at once. One home, so that every source splits the same way.
"""

from __future__ import annotations

import zlib

import numpy as np

HASH_BUCKETS = 1_000_000


def split_crc(seed: int = 0) -> int:
    """The running CRC-32 of ``f"{seed}:"``: chained with a sequence it gives ``in_held_out_split``'s hash."""
    return zlib.crc32(f"{seed}:".encode())


def in_held_out_split(sequence: str, fraction: float, seed: int = 0) -> bool:
    """Whether ``sequence`` belongs to the held-out ``fraction``: a pure function of its residues and ``seed``."""
    if fraction <= 0:
        return False
    bucket = zlib.crc32(f"{seed}:{sequence}".encode()) % HASH_BUCKETS
    return bucket < fraction * HASH_BUCKETS


def held_out_by_hash(hashes: np.ndarray, fraction: float) -> np.ndarray:
    """``in_held_out_split`` of every record at once, from their stored hashes (uint32, ``split_crc`` chained
    with the residues): a boolean per record."""
    return (hashes % np.uint32(HASH_BUCKETS)) < fraction * HASH_BUCKETS
