"""What goes with a ``--model``, decided once for every command (pretrain, finetune, embed, score, predict, push):
which tokenizer reads its sequences and how many tokens it can take.

One rule each, because the copies had started to disagree (a Hub id got protconv's tokenizer in fine-tuning and
its own in inference; a rotary Performer was refused long inputs in pretraining only):

- **Tokenizer**: the model's own, always: a folder's tokenizer files, or the Hub repository's. protconv's
  tokenizer (``<cls>``/``<eos>`` framing) only where protconv defines the model: a preset, a protconv model type,
  or a protconv folder saved without tokenizer files. A folder of another family without tokenizer files is an
  error: its vocabulary is unknown, and guessing it gives scores that look fine and mean nothing.
- **Vocabulary**: the tokenizer must give each of the 20 amino acids its own token (not ``<unk>``):
  a word-piece tokenizer of English text, or a DNA model's, is refused naming the folder (``check_vocabulary``).
- **Position limit**: learned absolute positions limit the tokens per sequence (``max_position_embeddings``,
  less the offset of ESM/RoBERTa-style numbering), and ESM-2's rotary model its training context (1022 residues
  with ``<cls>``/``<eos>``). Conv models and protconv's rotary Performers take any length.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from .modeling.vocabulary import STANDARD_AMINO_ACIDS
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


def check_vocabulary(tokenizer: PreTrainedTokenizerBase, model: str | Path) -> None:
    """Refuse a tokenizer that cannot read proteins: an amino acid without its own token (unknown, or shared with
    another letter) would make every command's numbers meaningless without any error."""
    vocab = tokenizer.get_vocab()
    unknown = tokenizer.unk_token_id
    ids = {letter: vocab.get(letter) for letter in STANDARD_AMINO_ACIDS}
    missing = "".join(letter for letter, token in ids.items() if token is None or token == unknown)
    if missing:
        raise UnknownTokenizerError(
            f"{model}: its tokenizer ({type(tokenizer).__name__}) has no token for the amino acids {missing}; "
            "protconv needs a protein tokenizer with one token per residue letter"
        )
    if len(set(ids.values())) != len(ids):
        raise UnknownTokenizerError(f"{model}: its tokenizer gives several amino acids the same token")


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


#: Model types whose learned positions are numbered from ``pad_token_id + 1`` (fairseq's ``make_positions``):
#: ``max_position_embeddings`` rows hold ``pad_token_id + 1`` fewer tokens (ESM-1b: 1026 rows, 1024 tokens).
PADDING_OFFSET_MODEL_TYPES = frozenset({"esm", "roberta", "xlm-roberta", "camembert"})


def position_limit(config: PretrainedConfig) -> int | None:
    """How many tokens (special tokens included) one sequence may have, or ``None`` for no limit.

    - learned absolute positions: ``max_position_embeddings``, less the ``pad_token_id + 1`` rows that ESM and
      RoBERTa-style models skip (ESM-1b: 1024 tokens, 1022 residues);
    - ESM with rotary positions (ESM-2): the same 1024 tokens, the context ESM-2 was trained on. Rotary positions
      would run longer, but the model never saw such lengths; ESM's own scripts truncate at 1022 residues.
      protconv neither truncates nor windows silently: a longer record is an error naming it and this limit;
    - Conv models and protconv's rotary Performers: no limit.
    """
    rows = getattr(config, "max_position_embeddings", None)
    model_type = getattr(config, "model_type", None)
    absolute = _absolute_positions(config)
    if rows is None or not (absolute or model_type == "esm"):
        return None
    if model_type in PADDING_OFFSET_MODEL_TYPES:
        return rows - ((getattr(config, "pad_token_id", None) or 0) + 1)
    return rows


def _absolute_positions(config: PretrainedConfig) -> bool:
    """Learned absolute positions: said so, or, for a model of another family, not said otherwise (transformers 5
    dropped ``position_embedding_type`` from BERT and RoBERTa configs, whose positions are learned)."""
    kind = getattr(config, "position_embedding_type", None)
    return kind == "absolute" or (kind is None and getattr(config, "model_type", None) not in protconv_model_types())


def position_limit_reason(config: PretrainedConfig) -> str:
    """Why ``position_limit(config)`` limits this model, for error messages (names the config fields)."""
    rows = getattr(config, "max_position_embeddings", None)
    limit = position_limit(config)
    if not _absolute_positions(config):
        return (
            f"limit of {limit} tokens: ESM's training context (rotary positions; ESM-2 was trained on at most "
            f"{limit} tokens, its scripts truncate longer sequences)"
        )
    if limit != rows:
        return (
            f"limit of {limit} tokens: max_position_embeddings={rows} learned absolute positions, numbered from "
            f"pad_token_id + 1"
        )
    return f"max_position_embeddings={limit} (learned absolute positions)"
