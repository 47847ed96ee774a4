"""Moved to :mod:`protconv.data.tasks` (``rows``, ``labels``, ``columns``, ``flip``, ``sequence_tables``,
``residues``); re-exported for one release."""

from .tasks.columns import LABEL_COLUMNS, MASK_COLUMNS, SEQUENCE_COLUMNS, find_column, table_has_split_column  # noqa: F401
from .tasks.labels import assign_class_ids, parse_classes  # noqa: F401
from .tasks.residues import read_residue_table, read_residue_task, residue_classes, residue_labels  # noqa: F401
from .tasks.rows import LabelledSequences, TaskDataError, report_skipped  # noqa: F401
from .tasks.sequence_tables import (  # noqa: F401
    ColumnReader,
    csv_has_split_column,
    read_csv_task,
    read_table_task,
    table_text,
)
