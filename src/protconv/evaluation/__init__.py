"""``protconv evaluate``: benchmarks of several models side by side, reference columns beside every number. Sits
above :mod:`protconv.inference` (scoring, embeddings) and :mod:`protconv.downstream`; neither imports it."""

from .runner import EvaluateOptions, EvaluateResult, evaluate
from .suite import SuiteError, Task, proteingym_task, read_suite

__all__ = ["EvaluateOptions", "EvaluateResult", "SuiteError", "Task", "evaluate", "proteingym_task", "read_suite"]
