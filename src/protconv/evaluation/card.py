"""``--update_card``: a local model folder's README.md gets its evaluation results as Hub ``model-index`` entries
(task-level figures only; nothing for a metric that was not computed or came out NaN)."""

from __future__ import annotations

import json
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


def results_json_card_results(results_json: str | Path, model: str | Path) -> list[CardResult]:
    """The ``model-index`` entries of ``model`` in an evaluate ``results.json`` (for ``protconv push``): ``model``
    is matched by the path it was evaluated under (resolved) or, failing that, by its folder name; a file
    without that model, or one that is not evaluate's, raises ValueError naming the file."""
    path = Path(results_json)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        records = [Record(**row) for row in saved["results"]]
        kinds = {str(task["name"]): str(task["kind"]) for task in saved["tasks"]}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a results.json written by protconv evaluate ({error})") from None
    evaluated = list(dict.fromkeys(r.model for r in records if r.task in kinds))
    name = _evaluated_name(evaluated, Path(model))
    if name is None:
        raise ValueError(f"{path}: holds no results of {model} (models: {', '.join(evaluated) or 'none'})")
    return card_results(records, name, kinds)


def _evaluated_name(evaluated: Sequence[str], model: Path) -> str | None:
    by_path = [name for name in evaluated if Path(name).resolve() == model.resolve()]
    by_name = [name for name in evaluated if Path(name).name == model.name]
    found = by_path or (by_name if len(by_name) == 1 else [])
    return found[0] if found else None


def update_card_from_results(folder: str | Path, results_json: str | Path) -> Path:
    """``protconv push --results results.json``: the folder's README.md gets that file's figures of this model as
    ``model-index`` entries (the one call hub.py makes before uploading)."""
    readme = Path(folder) / "README.md"
    old = readme.read_text(encoding="utf-8") if readme.is_file() else None
    results = results_json_card_results(results_json, folder)
    readme.write_text(card_with_results(old, Path(folder).name, results), encoding="utf-8")
    return readme
