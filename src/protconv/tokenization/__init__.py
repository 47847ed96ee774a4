"""The shared amino-acid tokenizer, its one fast encoder, and the input checks of protconv's own entry points."""

from .encoding import Framing, NotOneTokenPerResidueError, SequenceEncoder, tokenizer_framing
from .tokenizer import build_tokenizer
from .validation import InvalidSequenceError, clean_sequence

__all__ = [
    "Framing",
    "InvalidSequenceError",
    "NotOneTokenPerResidueError",
    "SequenceEncoder",
    "build_tokenizer",
    "clean_sequence",
    "tokenizer_framing",
]
