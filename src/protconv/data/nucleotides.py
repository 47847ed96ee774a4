"""The one check for DNA/RNA given where proteins are expected (pretraining corpora and inference inputs alike).

Nucleotide letters are valid amino-acid letters, so a DNA FASTA passes validation and would silently be read as
protein; counting a file's first records that hold only A/C/G/T/U/N is the one check that can notice it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

_NUCLEOTIDES = re.compile("[ACGTUN]+")
#: A file is flagged when at least this fraction of its first ``NUCLEOTIDE_SAMPLE`` records of at least
#: ``NUCLEOTIDE_MIN_LENGTH`` residues consist of A/C/G/T/U/N only (a real protein of 20+ residues almost never does).
NUCLEOTIDE_FRACTION = 0.9
NUCLEOTIDE_SAMPLE = 100
NUCLEOTIDE_MIN_LENGTH = 20


class NucleotideCheck:
    """Counts a file's first records that look like DNA/RNA and warns once if most of them do.

    ``expects`` and ``advice`` complete the warning for the reader at hand (what it reads proteins for, and what
    to do about the file), so that pretraining and inference say the same thing in their own terms; the warning
    goes to the reader's ``logger``, where its users look for (and filter) that reader's messages.
    """

    def __init__(self, path: Path, expects: str, advice: str, logger: logging.Logger) -> None:
        self.path = path
        self.logger = logger
        self.expects = expects
        self.advice = advice
        self.seen = 0
        self.nucleotide = 0
        self.done = False

    def add(self, sequence: str) -> bool:
        """Count one record; True once the verdict is in (the sample is complete; later records are ignored)."""
        if self.done:
            return True
        if len(sequence) < NUCLEOTIDE_MIN_LENGTH:
            return False
        self.seen += 1
        self.nucleotide += _NUCLEOTIDES.fullmatch(sequence) is not None
        if self.seen < NUCLEOTIDE_SAMPLE:
            return False
        self.finish()
        return True

    def finish(self) -> None:
        """Give the verdict on the records counted so far (at most once)."""
        if self.done:
            return
        self.done = True
        if self.seen and self.nucleotide >= NUCLEOTIDE_FRACTION * self.seen:
            self.logger.warning(
                "%s looks like a nucleotide FASTA: %d of its first %d records of %d+ letters hold only A/C/G/T/U/N. "
                "%s proteins (nucleotide letters are valid amino-acid letters, so nothing else stops them); %s.",
                self.path, self.nucleotide, self.seen, NUCLEOTIDE_MIN_LENGTH, self.expects, self.advice,
            )  # fmt: skip
