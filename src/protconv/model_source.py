"""What goes with a ``--model``, decided once for every command (pretrain, finetune, embed, score, predict, push):
which tokenizer reads its sequences and how many tokens it can take.

One rule each, because the copies had started to disagree (a Hub id got protconv's tokenizer in fine-tuning and
its own in inference; a rotary Performer was refused long inputs in pretraining only):

- **Tokenizer**: the model's own, always: a folder's tokenizer files, or the Hub repository's. protconv's
  tokenizer (``<cls>``/``<eos>`` framing) only where protconv defines the model: a preset, a protconv model type,
  or a protconv folder saved without tokenizer files. A folder of another family without tokenizer files is an
  error: its vocabulary is unknown, and guessing it gives scores that look fine and mean nothing.
- **Position limit**: only learned absolute positions limit the tokens per sequence
  (``max_position_embeddings``). Conv models and rotary Performers take any length.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from .registry import available_presets, protconv_model_types
from .tokenization import build_tokenizer

#: Files by which a folder carries its own tokenizer (fast ``tokenizer.json``, or a slow tokenizer's vocabulary
#: and config, as ESM's ``vocab.txt`` with ``tokenizer_config.json``).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


class UnknownTokenizerError(ValueError):
    """A model folder of a non-protconv family carries no tokenizer: its vocabulary cannot be known."""


def protconv_model_names() -> set[str]:
    """Names that ``registry.resolve_config`` turns into a protconv config without a folder."""
    return set(available_presets()) | protconv_model_types()


def has_own_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(model: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer that goes with ``model`` (a folder, a config.json, a preset or model type, or a Hub id)."""
    path = Path(model).expanduser()
    folder = path.parent if path.is_file() else path
    if folder.is_dir():
        if has_own_tokenizer(folder):
            return AutoTokenizer.from_pretrained(folder)
        _check_protconv_folder(folder)
        return build_tokenizer()
    if str(model) in protconv_model_names():
        return build_tokenizer()
    return AutoTokenizer.from_pretrained(str(model))


def _check_protconv_folder(folder: Path) -> None:
    """A folder without tokenizer files gets protconv's tokenizer only when its config is a protconv model."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        return  # not a model folder: the command that opens it names what is missing
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return  # an unreadable config is reported by the config loader, with its own message
    if model_type not in protconv_model_types():
        raise UnknownTokenizerError(
            f"{folder}: a {model_type or 'model'} folder without tokenizer files ({', '.join(TOKENIZER_FILES)}); "
            "save the model's own tokenizer into it (tokenizer.save_pretrained)"
        )


def position_limit(config: PretrainedConfig) -> int | None:
    """How many tokens (special tokens included) one sequence may have: ``max_position_embeddings`` for learned
    absolute positions, else no limit (Conv; Performer and ESM with rotary positions)."""
    if getattr(config, "position_embedding_type", None) != "absolute":
        return None
    return getattr(config, "max_position_embeddings", None)
