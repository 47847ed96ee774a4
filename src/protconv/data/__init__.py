"""Readers for protein data formats. One reader per format; every reader reports bad input by file and line."""

from .batching import Batch, TokenBudgetBatcher, shard
from .corpus import FastaCorpus
from .fasta import FastaRecord, read_fasta
from .masking import MaskedLMCollator, PretrainingCollator
from .msa import Alignment, MSAFormatError, read_alignment
from .profile_corpus import MSACorpus, ProfiledSequence
from .profiles import Profile, compute_profile, sequence_targets

__all__ = [
    "Alignment",
    "Batch",
    "FastaCorpus",
    "FastaRecord",
    "MSACorpus",
    "MSAFormatError",
    "MaskedLMCollator",
    "PretrainingCollator",
    "Profile",
    "ProfiledSequence",
    "TokenBudgetBatcher",
    "compute_profile",
    "read_alignment",
    "read_fasta",
    "sequence_targets",
    "shard",
]
