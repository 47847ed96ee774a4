"""Pretraining arguments: three dataclasses read by ``transformers.HfArgumentParser`` from a YAML file and the
command line (the command line wins), so a run is described by a versionable config plus a few overrides."""

from __future__ import annotations

import argparse
import json
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser

from ..data.choices import check_choice
from ..data.fasta_corpus import InvalidPolicy
from ..data.profiles import InsertPolicy, Prior
from ..modeling.configuration_base import PROFILE, PretrainingObjective, objective_parts
from ..run_logging import LOG_LEVELS

#: ``--mixed_precision`` values (none: whatever ``accelerate launch`` was configured with).
MixedPrecision = Literal["no", "fp16", "bf16"]


def choice(name: str, value: str, alias: Any) -> Any:
    """``value``, checked against the setting's Literal ``alias`` (``check_choice``: the ValueError names the
    setting and lists the alias's values). The fields stay ``str``: ``HfArgumentParser`` would turn a Literal into
    argparse choices (another error), and a YAML config is checked by ``read_config_file``."""
    check_choice(name, value, alias)
    return value


def _either(alias: Any, separator: str) -> str:
    """A Literal alias's values for a ``--help`` line."""
    return separator.join(typing.get_args(alias))


@dataclass
class ModelArguments:
    """Which model to pretrain."""

    model: str = field(
        default="carp-600k",
        metadata={
            "help": "a preset of any registered family (e.g. carp-600k), a model type (e.g. protconv_conv) with "
            "--config_overrides, a config.json, or a saved model folder (training continues from its weights)"
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "comma-separated key=value config fields, e.g. 'hidden_size=64,num_hidden_layers=4'"},
    )
    pretraining_objective: str | None = field(
        default=None,
        metadata={
            "help": f"{_either(PretrainingObjective, ' | ')} (profile targets need --msa_files); default: the "
            "config's own (mlm for presets). Weights: --config_overrides profile_task_weight=3,profile_loss_scale=10"
        },
    )


@dataclass
class DataArguments:
    """Where the proteins come from and how they become batches."""

    train_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "training FASTA files (plain or .gz). Each is indexed once (record offsets and lengths, in "
            "--data_cache_dir) so that every process reads only its own records; a .gz file is decompressed once "
            "into that cache (it takes the uncompressed size on disk), as compressed data cannot be read at random"
        },
    )
    data_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "where FASTA indexes, decompressed copies of .gz files and per-row arrays of --dataset_name are "
            "kept, keyed by each file's size, time and contents (default: OUTPUT_DIR/data_cache)"
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "a Hugging Face `datasets` dataset (Hub name, or a local folder of Parquet/Arrow/CSV/JSON files "
            "or a save_to_disk folder) whose --sequence_column holds proteins; needs `pip install datasets`"
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "the dataset's configuration name"})
    dataset_split: str = field(default="train", metadata={"help": "the split trained on"})
    dataset_validation_split: str | None = field(
        default=None, metadata={"help": "a held-out split (e.g. validation); if none, --validation_fraction"}
    )
    sequence_column: str = field(default="sequence", metadata={"help": "the dataset column holding the residues"})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "stream --dataset_name instead of preparing it (for corpora too large for local disk): rows come "
            "through a shuffle buffer of --shuffle_buffer rows (shards shuffled too, re-seeded each epoch); every "
            "process reads the whole stream and keeps its share, and resuming re-reads the stream to its position"
        },
    )
    shuffle_buffer: int = field(default=10_000, metadata={"help": "rows in the --streaming shuffle buffer"})
    cluster_file: str | None = field(
        default=None,
        metadata={
            "help": "TSV of 'member_id<TAB>cluster_id' lines (member_id: the first word of a FASTA header): each "
            "epoch trains on one member of every cluster, drawn anew (seeded); unlisted records are their own cluster"
        },
    )
    cluster_header_field: str | None = field(
        default=None,
        metadata={
            "help": "cluster by the NAME=VALUE word of each FASTA header instead, e.g. UniRef50 for headers that "
            "carry 'UniRef50=UniRef50_Q6GZX4'"
        },
    )
    msa_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "MSAs (.a3m, .sto, aligned .fasta/.a2m) and/or profiles (.hhm, .hmm), or directories of them: "
            "every member sequence is a training example with per-residue profile targets"
        },
    )
    validation_msa_files: list[str] = field(
        default_factory=list,
        metadata={"help": "held-out MSAs/profiles (whole families); if none, --validation_fraction of msa_files"},
    )
    profile_prior: str = field(default="background", metadata={"help": f"pseudocounts: {_either(Prior, ' | ')}"})
    profile_pseudocount_weight: float = field(
        default=1.5, metadata={"help": "weight of the background pseudocount (counts are scaled to Neff)"}
    )
    msa_inserts: str = field(
        default="background",
        metadata={"help": f"targets of insert residues: {_either(InsertPolicy, ' | ')} (no target)"},
    )
    profile_cache_dir: str | None = field(
        default=None, metadata={"help": "where computed profiles are cached (default: OUTPUT_DIR/profile_cache)"}
    )
    validation_files: list[str] = field(
        default_factory=list, metadata={"help": "held-out FASTA files; if none, --validation_fraction of train_files"}
    )
    validation_fraction: float = field(
        default=0.02,
        metadata={
            "help": "share of train_files / msa_files held out (by sequence hash) when no validation_files / "
            "validation_msa_files"
        },
    )
    max_validation_sequences: int | None = field(default=None, metadata={"help": "cap on validation sequences"})
    max_length: int = field(
        default=1024, metadata={"help": "tokens per sequence incl. special tokens; longer are cropped"}
    )
    max_tokens_per_batch: int = field(default=8192, metadata={"help": "padded tokens per micro-batch per process"})
    pool_size: int = field(
        default=100_000,
        metadata={
            "help": "records grouped by length together: windows of each epoch's shuffled records (or pools of the "
            "--streaming stream) are sorted by length before being cut into batches; larger pads less"
        },
    )
    mlm_probability: float = 0.15
    mask_fraction: float = field(default=0.8, metadata={"help": "share of selected residues replaced by <mask>"})
    random_fraction: float = field(default=0.1, metadata={"help": "share of selected residues replaced at random"})
    invalid_sequences: str = field(
        default="error",
        metadata={"help": f"records with characters outside the alphabet: {_either(InvalidPolicy, ' | ')}"},
    )
    add_cls: bool = True
    add_eos: bool = True
    prefetch_batches: int = field(default=2, metadata={"help": "batches prepared ahead in a thread (0: inline)"})

    @property
    def invalid_policy(self) -> InvalidPolicy:
        return choice("invalid_sequences", self.invalid_sequences, InvalidPolicy)

    @property
    def prior(self) -> Prior:
        return choice("profile_prior", self.profile_prior, Prior)

    @property
    def insert_policy(self) -> InsertPolicy:
        return choice("msa_inserts", self.msa_inserts, InsertPolicy)


@dataclass
class PretrainingArguments:
    """How to optimise, checkpoint and log."""

    output_dir: str = "pretrain-output"
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start over even if checkpoints exist"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest complete checkpoint"})
    resume_from: str | None = field(default=None, metadata={"help": "continue from this checkpoint folder"})
    seed: int = 0
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps (the schedule spans them)"})
    stop_after_steps: int | None = field(
        default=None,
        metadata={"help": "stop (after checkpointing) at this step, e.g. to fit a job time limit; --resume continues"},
    )
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-8
    lr_scheduler_type: str = field(default="linear", metadata={"help": "any transformers scheduler name"})
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": f"{_either(MixedPrecision, ' | ')}; default: whatever `accelerate launch` was configured with"
        },
    )
    torch_compile: bool = False
    logging_steps: int = 10
    eval_steps: int = 200
    eval_at_start: bool = field(default=True, metadata={"help": "validate before the first step (a baseline)"})
    save_steps: int = 500
    save_total_limit: int = field(default=3, metadata={"help": "checkpoints kept (oldest deleted)"})
    max_nonfinite_steps: int = field(default=3, metadata={"help": "consecutive non-finite losses before stopping"})
    report_to: list[str] = field(
        default_factory=list, metadata={"help": "accelerate trackers: tensorboard, wandb, mlflow... (none: no tracker)"}
    )
    run_name: str | None = field(
        default=None,
        metadata={
            "help": "the run's name in the trackers (wandb, mlflow, tensorboard...; their project is 'protconv'); "
            "default: the name of --output_dir"
        },
    )
    log_level: str = field(
        default="info",
        metadata={
            "help": f"{' | '.join(LOG_LEVELS)}: what the console and OUTPUT_DIR/protconv.log show (other processes "
            "than the main one show warnings only)"
        },
    )
    plot: bool = True
    disable_tqdm: bool = False


_DESCRIPTION = "Pretrain a protconv protein language model (masked LM and/or MSA profiles)"
ARGUMENT_CLASSES = (ModelArguments, DataArguments, PretrainingArguments)
AllArguments = tuple[ModelArguments, DataArguments, PretrainingArguments]


def parse_arguments(argv: Sequence[str] | None = None, prog: str | None = None) -> AllArguments:
    """``--config FILE.yaml`` supplies defaults; every other flag overrides them. ``prog`` names the command in
    ``--help`` (default: the script's name)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    parser = HfArgumentParser(
        ARGUMENT_CLASSES,  # type: ignore[arg-type]  # transformers' DataClassType is a NewType no class satisfies
        prog=prog,
        description=_DESCRIPTION,
    )
    parser.add_argument("--config", help="YAML file of arguments (flags given on the command line win)")
    if known.config:
        parser.set_defaults(**read_config_file(known.config))
    # The trailing namespace holds --config, which is not a dataclass field.
    outputs = parser.parse_args_into_dataclasses(args=list(rest), look_for_args_file=False)
    model_args, data_args, train_args = outputs[:3]
    validate(model_args, data_args, train_args)
    return model_args, data_args, train_args


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of argument names, checked and ready for ``set_defaults``.

    An unknown name or a value of the wrong type is an error naming the file and the field: argparse would
    otherwise take a non-string default as it is (``max_steps: 1.5`` would run). Paths are relative to the config
    file's folder (see ``PATH_OPTIONS``), so a config means the same run wherever it is launched from.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values")
    types_by_name = _field_types()
    unknown = sorted(set(values) - set(types_by_name))
    if unknown:
        raise ValueError(f"{path}: unknown arguments {unknown}")
    if isinstance(values.get("config_overrides"), dict):
        values["config_overrides"] = ",".join(f"{k}={v}" for k, v in values["config_overrides"].items())
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = _check_type(value, types_by_name[name])
        except ValueError as error:
            raise ValueError(f"{path}: {name}: {error}") from None
    return _resolve_paths(checked, path.parent)


#: Options whose values are paths. In a config file they are relative to the file's folder; on the command line
#: relative to the working directory, as a shell user expects. ``output_dir`` is one of them: a config then
#: describes one run folder, wherever it is launched from, so that ``--resume`` from another directory continues
#: that run instead of starting a new one, and a config kept beside its runs writes there.
PATH_OPTIONS = frozenset(
    {
        "train_files",
        "validation_files",
        "msa_files",
        "validation_msa_files",
        "cluster_file",
        "data_cache_dir",
        "profile_cache_dir",
        "output_dir",
        "resume_from",
    }
)
#: Options that are a path or a name (a preset, a model type, a Hub id): taken as a path relative to the config
#: file's folder only when that path exists, as ``from_pretrained`` and ``load_dataset`` prefer a local folder.
PATH_OR_NAME_OPTIONS = frozenset({"model", "dataset_name"})


def _resolve_paths(values: dict[str, Any], folder: Path) -> dict[str, Any]:
    resolved = dict(values)
    for name, value in values.items():
        if name in PATH_OPTIONS and isinstance(value, list):
            resolved[name] = [_from_folder(item, folder) for item in value]
        elif name in PATH_OPTIONS and value is not None:
            resolved[name] = _from_folder(value, folder)
        elif name in PATH_OR_NAME_OPTIONS and value is not None:
            candidate = _from_folder(value, folder)
            resolved[name] = candidate if os.path.exists(candidate) else value
    return resolved


def _from_folder(value: str, folder: Path) -> str:
    """``value`` joined to the config's folder as ``--config`` named it: relative when that was relative, so that
    the run's record reads like a command line (and shows no home folder); ``~`` and absolute paths as they are.
    Normalised (``examples/configs/../data`` -> ``examples/data``) for the same reason."""
    value = os.path.expanduser(value)
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(folder, value))


def _field_types() -> dict[str, Any]:
    return {f.name: typing.get_type_hints(cls)[f.name] for cls in ARGUMENT_CLASSES for f in fields(cls)}


_KIND = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURAL = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def _check_type(value: Any, annotation: Any) -> Any:
    """``value`` as the field's type, or a ValueError saying what was expected. A string is read as the command
    line would read it (YAML takes ``1e-3`` for a string); any other value must already have the field's type."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (annotation,) = [a for a in args if a is not type(None)]
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        items = [value] if isinstance(value, str) else value  # one file needs no brackets
        if not isinstance(items, list):
            raise ValueError(f"expected a list of {_PLURAL[item]}, got {value!r}")
        return [_check_scalar(v, item) for v in items]
    return _check_scalar(value, annotation)


def _check_scalar(value: Any, kind: type) -> Any:
    if value == "None":
        raise ValueError("'None' is a string in YAML; write null (or leave the option out) for no value")
    if isinstance(value, str) and kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    hint = " (quote it)" if kind is str and isinstance(value, int | float | bool) else ""
    raise ValueError(f"expected {_KIND[kind]}, got {value!r}{hint}")


def parse_overrides(text: str | None) -> dict[str, Any]:
    """'a=1,b=gelu,c=0.1' -> {'a': 1, 'b': 'gelu', 'c': 0.1} (JSON values where they parse, strings otherwise)."""
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"config override {item!r} is not key=value")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value.strip()
    return overrides


def validate(model_args: ModelArguments, data_args: DataArguments, train_args: PretrainingArguments) -> None:
    """Catch inconsistent arguments before any process starts reading data."""
    if not data_args.train_files and not data_args.msa_files and not data_args.dataset_name:
        raise ValueError(
            "no training data: pass --train_files FASTA [...], --dataset_name NAME_OR_PATH and/or --msa_files "
            "MSA_OR_DIR [...] (or in the config)"
        )
    if data_args.streaming and (not data_args.dataset_name or data_args.train_files or data_args.msa_files):
        raise ValueError("--streaming reads one --dataset_name only (FASTA and MSA inputs are indexed instead)")
    if (data_args.cluster_file or data_args.cluster_header_field) and not data_args.train_files:
        raise ValueError("--cluster_file/--cluster_header_field cluster FASTA records: pass --train_files")
    if data_args.cluster_file and data_args.cluster_header_field:
        raise ValueError("pass one of --cluster_file and --cluster_header_field")
    if data_args.cluster_file and not Path(data_args.cluster_file).is_file():
        raise FileNotFoundError(f"cluster file not found: {data_args.cluster_file}")
    for name in ("pool_size", "shuffle_buffer"):
        if getattr(data_args, name) < 1:
            raise ValueError(f"{name} must be at least 1")
    objective = model_args.pretraining_objective
    if objective is not None:
        check_choice("pretraining_objective", objective, PretrainingObjective)
    if objective is not None and PROFILE in objective_parts(objective) and not data_args.msa_files:
        raise ValueError(f"pretraining_objective={objective!r} needs profile targets: pass --msa_files")
    _ = data_args.prior, data_args.insert_policy, data_args.invalid_policy  # each raises ValueError if unknown
    if train_args.log_level.lower() not in LOG_LEVELS:
        raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {train_args.log_level!r}")
    if train_args.mixed_precision is not None:
        choice("mixed_precision", train_args.mixed_precision, MixedPrecision)
    for name in ("max_steps", "logging_steps", "eval_steps", "save_steps", "gradient_accumulation_steps"):
        if getattr(train_args, name) < 1:
            raise ValueError(f"{name} must be at least 1")
    if train_args.save_total_limit < 1:
        raise ValueError("save_total_limit must be at least 1 (the checkpoint to resume from)")
    parse_overrides(model_args.config_overrides)


def as_flat_dict(*arguments: Any) -> dict[str, Any]:
    """All arguments in one mapping, for the model card, trackers and the checkpoint's record of the run."""
    flat: dict[str, Any] = {}
    for group in arguments:
        flat.update(asdict(group))
    return flat
