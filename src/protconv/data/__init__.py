"""Readers for protein data formats. One reader per format; every reader reports bad input by file and line."""

from .fasta import FastaRecord, read_fasta

__all__ = ["FastaRecord", "read_fasta"]
