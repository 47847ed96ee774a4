"""The shared amino-acid tokenizer and the input checks of protconv's own entry points."""

from .tokenizer import build_tokenizer
from .validation import InvalidSequenceError, clean_sequence

__all__ = ["InvalidSequenceError", "build_tokenizer", "clean_sequence"]
