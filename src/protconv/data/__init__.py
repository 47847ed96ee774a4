"""Protein data, from files to batches, shared by pretraining, fine-tuning and inference.

Readers, one per format, each reporting bad input by file and line: ``fasta``, ``msa`` (A3M, aligned FASTA/A2M,
Stockholm), ``profile_files`` (HMMER3 .hmm, HH-suite .hhm), ``tables`` (CSV/TSV),
``tasks`` (TAPE/FLIP task data: CSV, ``datasets`` tables, per-residue FASTA, the splits).
Then ``profiles`` (MSA -> per-residue amino-acid distributions), the corpora ``fasta_corpus`` and ``msa_corpus``
(streams with a held-out split, whose rule is ``held_out``), ``batching`` (token-budget batches, sharding) and
``masking`` (BERT masking and profile targets); ``choices`` checks their closed-set settings. Nothing here imports
the model heads or losses: only ``modeling.vocabulary``.
"""

from .batching import Batch, TokenBudgetBatcher, shard
from .fasta import FastaRecord, read_fasta
from .fasta_corpus import FastaCorpus
from .masking import MaskedLMCollator, PretrainingCollator
from .msa import Alignment, MSAFormatError, read_alignment
from .msa_corpus import MSACorpus, ProfiledSequence
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
