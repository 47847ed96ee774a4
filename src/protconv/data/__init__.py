"""Readers for protein data formats. One reader per format; every reader reports bad input by file and line."""

from .batching import Batch, TokenBudgetBatcher, shard
from .corpus import FastaCorpus
from .fasta import FastaRecord, read_fasta
from .masking import MaskedLMCollator

__all__ = ["Batch", "FastaCorpus", "FastaRecord", "MaskedLMCollator", "TokenBudgetBatcher", "read_fasta", "shard"]
