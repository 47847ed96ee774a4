"""Rows of downstream task data: ``LabelledSequences`` (what every task reader returns and fine-tuning and the
baselines share, so both see one split), the bad-row policy that fills its ``skipped`` list, the report of those
rows, and a table row as the readers hand it to the one row check."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...tokenization.validation import InvalidSequenceError, UnknownPolicy, clean_sequence
from .vocabulary import BadRowPolicy, Split


class TaskDataError(ValueError):
    """A task file is malformed (missing columns, unknown split, a bad row under ``on_bad_row="error"``)."""


@dataclass
class LabelledSequences:
    """Sequences with one label each (a float, a class id, or a list of per-residue class ids / -100).

    ``names`` holds each row's origin (``file:line`` for CSV rows, the FASTA id for per-residue rows);
    ``skipped`` the message of every bad row left out under ``on_bad_row="skip"``.
    """

    sequences: list[str] = field(default_factory=list)
    labels: list = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, sequence: str, label, name: str) -> None:
        self.sequences.append(sequence)
        self.labels.append(label)
        self.names.append(name)

    def reject(self, message: str, policy: BadRowPolicy) -> None:
        if policy == "error":
            raise TaskDataError(message)
        self.skipped.append(message)

    def clean(
        self,
        text: str,
        policy: BadRowPolicy,
        record: str,
        unknown: UnknownPolicy = "error",
        locate: Callable[[int], int] | None = None,
    ) -> str | None:
        """``clean_sequence(text, record, unknown, locate)``, or None once the row is rejected: a sequence that
        fails the checks is a bad row like any other, handled by ``policy`` (every task reader's rule)."""
        try:
            return clean_sequence(text, record=record, unknown=unknown, locate=locate)
        except InvalidSequenceError as error:
            self.reject(str(error), policy)
            return None


def report_skipped(data_by_split: Mapping[Split, LabelledSequences], limit: int | None = None) -> str:
    """Every skipped row of ``data_by_split`` (split name -> data), one line each, under a count summary.

    Returns "" when nothing was skipped. A row that belongs to no split (e.g. an unexpected FLIP ``set`` value)
    is reported by every split's read; it is listed once here. ``limit`` caps the rows listed (the count
    still covers them all). Example::

        skipped 2 bad rows (train: 2, valid: 1, test: 1):
          flip.csv:3: unexpected set value 'tset' (expected train or test, any case)
          flip.csv:5: label 'nan' is not a finite number
    """
    messages = list(dict.fromkeys(message for data in data_by_split.values() for message in data.skipped))
    if not messages:
        return ""
    counts = ", ".join(f"{split}: {len(set(data.skipped))}" for split, data in data_by_split.items() if data.skipped)
    shown = messages if limit is None else messages[: max(limit, 0)]
    lines = [f"skipped {len(messages)} bad row{'' if len(messages) == 1 else 's'} ({counts}):"]
    lines += [f"  {message}" for message in shown]
    if len(shown) < len(messages):
        lines.append(f"  ... and {len(messages) - len(shown)} more")
    return "\n".join(lines)


def subsample(data: LabelledSequences, count: int, seed: int) -> LabelledSequences:
    keep = sorted(np.random.default_rng(seed).choice(len(data), size=min(count, len(data)), replace=False))
    return LabelledSequences(
        [data.sequences[i] for i in keep], [data.labels[i] for i in keep], [data.names[i] for i in keep], data.skipped
    )


#: A row's text by column index: a CSV row's fields, or the columns read of a table in memory.
Fields = Sequence[str] | Mapping[int, str]


@dataclass
class Row:
    """One table row: where it is (``file:line``, ``name (split) row N``), its fields by column index, or what
    makes it unreadable (e.g. a wrong number of fields)."""

    where: str
    fields: Fields = ()
    problem: str | None = None
