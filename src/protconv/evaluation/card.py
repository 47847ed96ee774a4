"""``--update_card``: a local model folder's README.md gets its evaluation results as Hub ``model-index`` entries
(task-level figures only; nothing for a metric that was not computed or came out NaN)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..model_card import CardResult, card_with_results
from .results import Record

#: The Hub task type of the zero-shot fitness figures.
FITNESS_TASK_TYPE = "zero-shot-fitness-prediction"
#: Suite kind -> Hub task type (a regression head is text-classification on the Hub, as transformers' own are).
HUB_TASK_TYPES = {
    "zero-shot": FITNESS_TASK_TYPE,
    "regression": "text-classification",
    "classification": "text-classification",
    "token-classification": "token-classification",
    "perplexity": "fill-mask",
}


def card_results(records: Sequence[Record], model: str, kinds: Mapping[str, str]) -> list[CardResult]:
    return [
        CardResult(HUB_TASK_TYPES[kinds[record.task]], record.task, record.metric, record.value)
        for record in records
        if record.model == model and record.assay is None and math.isfinite(record.value)
    ]


def update_cards(records: Sequence[Record], models: Sequence[str], kinds: Mapping[str, str]) -> list[Path]:
    """The cards written; a Hub id (not a local folder) is left alone (``protconv push`` publishes a folder)."""
    written = []
    for model in models:
        folder = Path(model)
        results = card_results(records, model, kinds)
        if not folder.is_dir() or not results:
            continue
        readme = folder / "README.md"
        old = readme.read_text(encoding="utf-8") if readme.is_file() else None
        readme.write_text(card_with_results(old, folder.name, results), encoding="utf-8")
        written.append(readme)
    return written
