"""Model cards the Hub understands, built with ``huggingface_hub.ModelCard``.

The Hub reads a card's YAML front matter for its filters, its inference widget, the evaluation table
(``model-index``) and the licence, so every protconv card carries: ``library_name``, the ``pipeline_tag`` of the
model's head (a regression head is ``text-classification``, as transformers' own regression models are), a
protein widget, ``license``, ``datasets`` and ``base_model`` where they are Hub ids, and the evaluation results.
The body holds usage code that names the folder or Hub repo the card belongs to, the intended use, the run's
configuration as YAML that ``protconv pretrain --config`` reads back, and the BibTeX of the papers the model
implements.

The usage section sits between two HTML comments, so ``push`` can re-render it for the repo it publishes to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal, cast

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import PreTrainedModel

from .data.tasks.vocabulary import TaskType
from .modeling.configuration_base import MLM, PROFILE, objective_parts

#: The licence of protconv's code, and of CARP's released weights (microsoft/protein-sequence-models, MIT).
DEFAULT_LICENSE = "mit"

#: The first residues of a real protein (the example of the README), with one masked residue.
WIDGET_PROTEIN = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
WIDGET_MASKED = "MKTAYIAKQR<mask>ISFVKSHFSRQLEERLGLIEVQ"

#: The class-name suffix of each head -> the transformers pipeline that runs it.
PIPELINE_TAGS = {
    "ForMaskedLM": "fill-mask",
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "Model": "feature-extraction",
}

#: pipeline tag -> the Auto class a card's usage code loads the model with.
AUTO_CLASS_FOR_TAG = {
    "fill-mask": "AutoModelForMaskedLM",
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "feature-extraction": "AutoModel",
}

USAGE_START = "<!-- protconv:usage -->"
USAGE_END = "<!-- /protconv:usage -->"
_USAGE_BLOCK = re.compile(re.escape(USAGE_START) + r".*?" + re.escape(USAGE_END), re.DOTALL)

CITATIONS = {
    "carp": """@article{yang2024convolutions,
  title   = {Convolutions are competitive with transformers for protein sequence pretraining},
  author  = {Yang, Kevin K. and Fusi, Nicolo and Lu, Alex X.},
  journal = {Cell Systems},
  volume  = {15},
  number  = {3},
  pages   = {286--294},
  year    = {2024}
}""",
    "performer": """@inproceedings{choromanski2021rethinking,
  title     = {Rethinking Attention with Performers},
  author    = {Choromanski, Krzysztof and Likhosherstov, Valerii and Dohan, David and Song, Xingyou and
               Gane, Andreea and Sarlos, Tamas and Hawkins, Peter and Davis, Jared and Mohiuddin, Afroz and
               Kaiser, Lukasz and Belanger, David and Colwell, Lucy and Weller, Adrian},
  booktitle = {International Conference on Learning Representations},
  year      = {2021}
}""",
    "performer-proteins": """@article{choromanski2020masked,
  title   = {Masked Language Modeling for Proteins via Linearly Scalable Long-Context Transformers},
  author  = {Choromanski, Krzysztof and Likhosherstov, Valerii and Dohan, David and Song, Xingyou and
             Gane, Andreea and Sarlos, Tamas and Hawkins, Peter and Davis, Jared and Belanger, David and
             Colwell, Lucy and Weller, Adrian},
  journal = {arXiv preprint arXiv:2006.03555},
  year    = {2020}
}""",
    "profile": """@article{sturmfels2020profile,
  title   = {Profile Prediction: An Alignment-Based Pre-Training Task for Protein Sequence Models},
  author  = {Sturmfels, Pascal and Vig, Jesse and Madani, Ali and Rajani, Nazneen Fatema},
  journal = {arXiv preprint arXiv:2012.00195},
  year    = {2020}
}""",
}


@dataclass(frozen=True)
class CardResult:
    """One evaluation figure, for the card's table and its ``model-index``.

    ``dataset`` is what the figure was measured on: a Hub dataset id, or a file name (never a local path).
    """

    task_type: str
    dataset: str
    metric: str
    value: float
    split: str | None = None


def pipeline_tag(model: PreTrainedModel) -> str:
    """The pipeline that runs this model's head. A pretraining model with a masked-LM part fills masks (its folder
    loads with ``AutoModelForMaskedLM``); one trained on profiles alone is an encoder."""
    for cls in type(model).__mro__:  # a subclass (a test's, a user's) inherits its family class's head
        if cls.__name__.endswith("ForPreTraining"):
            parts = objective_parts(getattr(model.config, "pretraining_objective", MLM))
            return "fill-mask" if MLM in parts else "feature-extraction"
        for suffix, tag in PIPELINE_TAGS.items():
            if cls.__name__.endswith(suffix):
                return tag
    raise ValueError(f"no pipeline tag for {type(model).__name__}")


def citations(model: PreTrainedModel) -> list[str]:
    """BibTeX of the papers whose architecture and objective this model implements."""
    family = getattr(model.config, "family", "")
    keys = ["carp"] if family == "Conv" else ["performer", "performer-proteins"] if family == "Performer" else []
    if PROFILE in objective_parts(getattr(model.config, "pretraining_objective", MLM) or MLM):
        keys.append(PROFILE)  # the key of the profile paper in CITATIONS
    return [CITATIONS[key] for key in keys]


def hub_id_or_none(name: str | None) -> str | None:
    """``name`` if it can only be a Hub id (``org/name``, not an existing local path), else None: the Hub rejects
    local paths in ``base_model`` and ``datasets``, and a card must not leak them."""
    if not name or Path(name).exists() or name.startswith((".", "/", "~")):
        return None
    return name if re.fullmatch(r"[\w.-]+/[\w.-]+", name) else None


def data_name(name: str) -> str:
    """A dataset as a card names it: a Hub id as is, a local file or folder by its name only."""
    return hub_id_or_none(name) or PurePath(name).name or name


def public_name(value: Any) -> Any:
    """A value with local paths (absolute, relative, ``~``) cut to their last component, recursively, so no local
    path reaches a card; Hub ids (``org/name``) and URLs stay as they are."""
    if isinstance(value, str) and is_local_path(value):
        return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or value
    if isinstance(value, list | tuple):
        return [public_name(item) for item in value]
    if isinstance(value, Mapping):
        return {key: public_name(item) for key, item in value.items()}
    return value


def is_local_path(text: str) -> bool:
    """Whether ``text`` names a local file or folder rather than a plain name, a Hub id or a URL: absolute, or
    starting with ``.``/``~`` and a separator, or with two separators (a Hub id has one), or existing here with one."""
    if not text or "://" in text or "\n" in text:
        return False
    path = PurePath(text)
    if path.is_absolute() or text.replace("\\", "/").startswith(("./", "../", "~/")):
        return True
    separators = text.replace("\\", "/").count("/")
    return separators >= 2 or (separators == 1 and Path(text).exists())


def config_yaml(arguments: Mapping[str, Any], leave_out: Iterable[str] = ()) -> str:
    """``arguments`` as a YAML mapping that ``--config`` reads back (``null``, not ``'None'``), local paths cut."""
    skipped = set(leave_out)
    values = {key: public_name(value) for key, value in sorted(arguments.items()) if key not in skipped}
    return yaml.safe_dump(values, sort_keys=False, default_flow_style=None, width=100)


def usage_section(tag: str, reference: str) -> str:
    """How to load the model from ``reference`` (a Hub id or a folder), with and without protconv installed."""
    auto_class = AUTO_CLASS_FOR_TAG[tag]
    example = {
        "fill-mask": f'predict("{WIDGET_MASKED}", top_k=3)',
        "text-classification": f'predict("{WIDGET_PROTEIN}")',
        "token-classification": f'predict("{WIDGET_PROTEIN}")',
        "feature-extraction": f'predict("{WIDGET_PROTEIN}")  # (1, residues + special tokens, hidden)',
    }[tag]
    return f"""{USAGE_START}
## Usage

With protconv installed (`import protconv` registers the model type with the Auto classes):

```python
import protconv
from transformers import AutoTokenizer, {auto_class}, pipeline

tokenizer = AutoTokenizer.from_pretrained("{reference}")
model = {auto_class}.from_pretrained("{reference}")
predict = pipeline("{tag}", model=model, tokenizer=tokenizer)
{example}
```

Without protconv, the modeling code shipped with the weights is used (the tokenizer needs no code):

```python
from transformers import {auto_class}

model = {auto_class}.from_pretrained("{reference}", trust_remote_code=True)
```

Per-protein embeddings, zero-shot variant scores and predictions from the command line:
`protconv embed`, `protconv score` and `protconv predict` (`protconv --help`).
{USAGE_END}"""


def card_metadata(card_text: str) -> dict[str, Any]:
    """The front matter of a card as a dict; empty if it has none or it does not parse (a hand-edited card must
    not stop a push)."""
    try:
        return ModelCard(card_text, ignore_metadata_errors=True).data.to_dict()
    except Exception:  # huggingface_hub raises ValueError, yaml its own errors: all mean "no usable metadata"
        return {}


def retarget_usage(card_text: str, reference: str) -> str:
    """The card with its usage section re-rendered for ``reference``; cards without one are returned unchanged."""
    if not _USAGE_BLOCK.search(card_text):
        return card_text
    tag = card_metadata(card_text).get("pipeline_tag")
    if tag not in AUTO_CLASS_FOR_TAG:
        return card_text
    return _USAGE_BLOCK.sub(lambda _: usage_section(tag, reference), card_text, count=1)


_INPUT_AND_LIMITS = """It reads amino-acid sequences only (20 standard residues plus `B Z X J O U`; lowercase is
upper-cased, other characters become `<unk>`), not nucleotides, structures or text. Predictions are statistical:
they reflect the sequences it was trained on and are not a substitute for experimental measurement."""

_BASELINES = """Report simple supervised baselines (one-hot linear model, small CNN) beside fine-tuned results on the
same splits: on several fitness landscapes they are hard to beat."""

#: What each head is for: the card of a regression model does not describe masked-residue prediction.
INTENDED_USES = {
    "masked-lm": "A protein language model for research: masked-residue prediction, per-protein and per-residue "
    "embeddings for downstream models, and zero-shot scoring of substitutions.",
    "regression": "A sequence-level regression model for research: one predicted value per protein, in the units "
    "of the assay it was fine-tuned on (`protconv predict` writes them), for ranking or screening variants of "
    "proteins like those of its training data. Outside that family and assay its numbers have no calibration.",
    "classification": "A sequence-level classifier for research: one class (and the class probabilities) per "
    "protein, among the classes of the data it was fine-tuned on (`config.id2label`). It cannot answer "
    "with a class it was not trained on.",
    "token-classification": "A per-residue classifier for research: one label (and the label probabilities) per "
    "residue, among the labels of the data it was fine-tuned on (`config.id2label`), e.g. secondary structure.",
}
#: The head a card describes: the fine-tuning task types, or a masked LM.
IntendedUse = Literal["masked-lm"] | TaskType


def intended_use_section(use: IntendedUse = "masked-lm") -> str:
    """The card's intended use for this head: what it predicts, what it reads, and the baselines to report."""
    return f"## Intended use and limitations\n\n{INTENDED_USES[use]} {_INPUT_AND_LIMITS}\n\n{_BASELINES}"


def build_card(
    model: PreTrainedModel,
    title: str,
    summary: str,
    *,
    reference: str = "path/to/this/folder",
    details: Mapping[str, Any] | None = None,
    results: Sequence[CardResult] = (),
    sections: Mapping[str, str] | None = None,
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    license: str = DEFAULT_LICENSE,
    tags: Sequence[str] = (),
    intended_use: IntendedUse = "masked-lm",
) -> ModelCard:
    """The card of ``model``: Hub metadata, a summary table, usage, intended use, results, extra ``sections``
    (title -> markdown) and citations. ``datasets`` and ``base_model`` enter the metadata only where they are Hub
    ids; local names stay in the body."""
    tag = pipeline_tag(model)
    hub_datasets = [name for name in map(hub_id_or_none, datasets) if name]
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=tag,
        license=license,
        tags=list(dict.fromkeys(["protconv", "protein", "protein-language-model", *tags])),
        datasets=hub_datasets or None,
        base_model=hub_id_or_none(base_model),
        model_name=title,
        eval_results=[_eval_result(result) for result in results] or None,
        widget=[{"text": WIDGET_MASKED if tag == "fill-mask" else WIDGET_PROTEIN}],
    )
    body = [
        f"# {title}",
        summary,
        _table(model, details),
        usage_section(tag, reference),
        intended_use_section(intended_use),
        *(f"## {name}\n\n{text.strip()}" for name, text in (sections or {}).items()),
    ]
    if results:
        body.append(_results_table(results))
    body.append(_citation_section(model))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(body) + "\n")


def _table(model: PreTrainedModel, details: Mapping[str, Any] | None) -> str:
    config = model.config
    rows = {
        "architecture": type(model).__name__,
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
        "layers": config.num_hidden_layers,
        "hidden size": config.hidden_size,
        "vocabulary": config.vocab_size,
        **{key: public_name(value) for key, value in (details or {}).items()},
    }
    return "| | |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows.items())


def _eval_result(result: CardResult) -> EvalResult:
    return EvalResult(
        task_type=result.task_type,
        dataset_type=result.dataset,
        dataset_name=result.dataset,
        dataset_split=result.split,
        metric_type=result.metric,
        metric_value=round(float(result.value), 4),
    )


def _results_table(results: Sequence[CardResult]) -> str:
    rows = "\n".join(
        f"| {r.dataset} | {r.split or ''} | {r.metric} | {r.value:.4f} |" for r in sorted(results, key=_result_key)
    )
    return f"## Evaluation\n\n| data | split | metric | value |\n|---|---|---|---|\n{rows}"


def _result_key(result: CardResult) -> tuple[str, str, str]:
    return result.dataset, result.split or "", result.metric


def _citation_section(model: PreTrainedModel) -> str:
    entries = "\n\n".join(citations(model))
    return f"## Citation\n\nIf you use this model, please cite the work it implements:\n\n```bibtex\n{entries}\n```"


def card_with_results(card_text: str | None, model_name: str, results: Sequence[CardResult]) -> str:
    """``card_text`` (or, for a folder without a card, a minimal one) with ``results`` in its ``model-index``:
    each replaces an earlier entry of the same task type, dataset, split and metric; the other entries stay."""
    card = ModelCard(card_text or f"---\nlibrary_name: transformers\n---\n\n# {model_name}\n")
    data = cast(ModelCardData, card.data)  # ModelCard's data is a ModelCardData; its annotation names the base
    new = [_eval_result(result) for result in results]
    replaced = {(r.task_type, r.dataset_name, r.dataset_split, r.metric_type) for r in new}
    kept = [
        r
        for r in (data.eval_results or [])
        if (r.task_type, r.dataset_name, r.dataset_split, r.metric_type) not in replaced
    ]
    data.eval_results = kept + new or None
    if not data.model_name:
        data.model_name = model_name
    return str(card.content)
