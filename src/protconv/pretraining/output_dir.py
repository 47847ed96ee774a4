"""Moved to :mod:`protconv.file_guards` (one home for output locks, shared with fine-tuning, evaluation and the
inference commands); re-exported for one release."""

from ..file_guards import LOCK_FILE, OutputDirInUseError, OutputDirLock  # noqa: F401
