"""Hub-ready model folders: weights, config with a complete ``auto_map``, modeling code, tokenizer, model card.

Folders are written to a temporary sibling and renamed into place, so an interrupted save never leaves a
half-written model where a finished one is expected. The siblings are named ``.<name>.<host>.<pid>.<random>``
(staging) and ``.<name>.old.<host>.<pid>.<random>`` (the previous folder, moved aside for the swap); what a
killed process left behind is removed (or, for a lost swap, restored) by the next save to the same target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .model_card import build_card, card_metadata, retarget_usage
from .modeling.hub_mixin import ProteinHubMixin
from .staging import make_staging_sibling, remove_stale_staging


def save_hub_folder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | Path,
    card: ModelCard | str | None = None,
    overwrite: bool = False,
    max_shard_size: int | str = "50GB",
) -> Path:
    """Write ``model`` + ``tokenizer`` (+ model card) as a folder that loads with the Auto classes anywhere.

    The card's usage code is pointed at ``folder`` as given (its name only, if absolute: a card never holds a
    local path); ``push`` points it at the repo. The folder gets ordinary permissions (those of ``mkdir``: 0o777
    less the umask). Staging folders of this target left by dead processes are cleaned up first.
    """
    folder = Path(folder)
    card_text = (
        None if card is None else retarget_usage(str(card), folder.name if folder.is_absolute() else str(folder))
    )
    if folder.parent.is_dir():
        remove_stale_staging(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_sibling(folder, "")
    try:
        model.save_pretrained(staging, max_shard_size=max_shard_size)
        tokenizer.save_pretrained(staging)
        if card_text is not None:
            (staging / "README.md").write_text(card_text, encoding="utf-8")
        if folder.exists():  # move the old folder aside first: at every instant one complete folder exists
            backup = make_staging_sibling(folder, "old.")
            os.replace(folder, backup / folder.name)
            os.replace(staging, folder)
            shutil.rmtree(backup)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool | None = False,
    token: str | None = None,
    api=None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    commit_description: str | None = None,
) -> str:
    """Upload a Hub-ready folder to ``repo_id`` (created if needed) in one commit; returns the commit URL (or the
    pull request's).

    The folder's protconv card is uploaded with its usage code naming ``repo_id``; the folder itself is not
    modified. ``revision`` is the branch to commit to (created from main if missing; with ``create_pr``, the branch
    the pull request targets). ``token`` defaults to the logged-in user's (``hf auth login`` or ``HF_TOKEN``).
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(folder)
    has_weights = any((folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json"))
    if not (folder / "config.json").is_file() or not has_weights:
        raise FileNotFoundError(f"{folder} is not a saved model folder (config.json and safetensors weights needed)")
    files, card_text = check_push_folder(folder)  # before anything exists on the Hub
    api = api or HfApi(token=token)
    repo_id = getattr(api.create_repo(repo_id, private=private, exist_ok=True), "repo_id", None) or repo_id
    operations = [
        CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
        for path in files
        if path.relative_to(folder).as_posix() != "README.md"
    ]
    if card_text is not None:
        text = retarget_usage(card_text, repo_id)
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=text.encode("utf-8")))
    if revision is not None and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = api.create_commit(
        repo_id=repo_id,
        operations=operations,
        commit_message=commit_message or "Upload protconv model",
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
    )
    return str(getattr(commit, "pr_url", None) or getattr(commit, "commit_url", commit))


def check_push_folder(folder: Path) -> tuple[list[Path], str | None]:
    """The files ``push_folder`` uploads and the card's text, checked before the repository is created: a push
    that fails half-way would leave an empty or partial repository behind.

    Refused with a ``ValueError`` naming the file: a link that leads outside the folder (its target would be
    uploaded: a private file, or a whole other folder), a link to nothing, a card that is not UTF-8, whose
    front matter is not a YAML mapping, or whose ``pipeline_tag`` is not one string (the Hub rejects the commit).
    A file that cannot be read raises its ``OSError`` here too.
    """
    root = folder.resolve()
    files = _folder_files(folder)
    for path in _folder_entries(folder):
        target = path.resolve()
        if path.is_symlink() and not path.exists():
            raise ValueError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist")
        if target != root and root not in target.parents:
            raise ValueError(
                f"{path} is a symbolic link to {target}, outside {folder}: push uploads only the folder's own files "
                "(copy the file in, or remove the link)"
            )
    for path in files:
        with open(path, "rb"):
            pass
    card = folder / "README.md"
    return files, (_checked_card(card) if card.is_file() else None)


def _checked_card(card: Path) -> str:
    """The card's text once it is UTF-8 with front matter the Hub accepts."""
    import yaml
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    data = card.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(f"{card}: not UTF-8 text (line {line}, byte {error.start}); save the card as UTF-8") from None
    block = REGEX_YAML_BLOCK.search(text)
    if block is None:
        return text
    try:
        metadata = yaml.safe_load(block.group(2))
    except yaml.YAMLError as error:
        raise ValueError(f"{card}: the metadata block (between the --- lines) is not valid YAML: {error}") from None
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"{card}: the metadata block must be a YAML mapping (key: value lines)")
    tag = (metadata or {}).get("pipeline_tag")
    if tag is not None and not isinstance(tag, str):
        raise ValueError(f"{card}: pipeline_tag must be one string (e.g. fill-mask), not {tag!r}")
    return text


def _folder_entries(folder: Path) -> list[Path]:
    """Every entry of the folder, links included, hidden entries left out (they are never uploaded)."""
    found = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found += [Path(directory) / name for name in [*subfolders, *names] if not name.startswith(".")]
    return sorted(found)


def _folder_files(folder: Path) -> list[Path]:
    """Every file of the folder, hidden entries (``.cache``, ``.git``, editor files) left out, as upload_folder."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def push_model(
    model: PreTrainedModel,
    repo_id: str,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    card: ModelCard | str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str = "50GB",
    tags: list[str] | None = None,
    api=None,
) -> str:
    """``model.push_to_hub`` for protconv models: weights, config, code, the tokenizer and a protconv card.

    transformers' own ``push_to_hub`` uploads its generic card and no tokenizer. The tokenizer and card default
    to those of the folder the model was loaded from (so a converted or fine-tuned model keeps its card and its
    CARP-style tokenizer); otherwise protconv's tokenizer and a new card.
    """
    source = Path(model.name_or_path) if model.name_or_path else None
    tokenizer = tokenizer or _source_tokenizer(source)
    if card is None:
        card = _source_card(source) or build_card(
            model, repo_id.split("/")[-1], "A protein language model built with protconv.", tags=tags or ()
        )
    with tempfile.TemporaryDirectory() as workdir:
        folder = save_hub_folder(model, tokenizer, Path(workdir) / "model", card=card, max_shard_size=max_shard_size)
        return push_folder(
            folder,
            repo_id,
            private=private,
            token=token if isinstance(token, str) else None,
            api=api,
            revision=revision,
            commit_message=commit_message,
            create_pr=create_pr,
            commit_description=commit_description,
        )


def _source_tokenizer(source: Path | None) -> PreTrainedTokenizerBase:
    from .model_source import load_tokenizer
    from .tokenization import build_tokenizer

    return build_tokenizer() if source is None else load_tokenizer(source)


def _source_card(source: Path | None) -> str | None:
    """The card of the folder the model came from, if protconv wrote it."""
    card = None if source is None else source / "README.md"
    if card is None or not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    return text if "protconv" in (card_metadata(text).get("tags") or []) else None


ProteinHubMixin.hub_publisher = push_model
