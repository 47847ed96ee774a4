"""The ``protconv`` command.

Exit codes, the rule every subcommand follows:

- 0: done.
- 2: a user error. Bad arguments (argparse and ``HfArgumentParser``), a path that is missing, unreadable, a
  directory, or already taken (``OSError`` and its subclasses), a malformed input or config file and any value
  protconv refuses (``ValueError`` and its subclasses: ``TaskDataError``, ``InvalidSequenceError``,
  ``MSAFormatError``, ``ProfileFormatError``, ``CarpCheckpointError``, JSON errors; ``yaml.YAMLError``), a run
  that diverged (pretraining's ``NonFiniteLossError``, fine-tuning's ``NonFiniteError``), a checkpoint that
  cannot be resumed (``CheckpointError``), a missing optional dependency (``ImportError``), and the Hub being
  unreachable or refusing a ``push``. Reported as ONE line on stderr, ``protconv <command>: error: <what and
  where>``, without a traceback.
- 130: interrupted (Ctrl-C), one line too.
- 1, with a traceback: anything else (``TypeError``, ``KeyError``, ``RuntimeError`` from torch, ...), which is a
  bug or an environment failure rather than something the command line can fix.

``protconv --debug <command> ...`` (or the environment variable ``PROTCONV_DEBUG=1``) shows the traceback of user
errors too. ``--debug`` goes before the subcommand: after it, ``--debug`` is TrainingArguments' own option.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from . import __version__
from .conversion import convert_carp
from .evaluation.command import add_evaluate_command
from .hub import push_folder
from .inference.commands import (
    add_embed_command,
    add_plot_embeddings_command,
    add_predict_command,
    add_scan_command,
    add_score_command,
)
from .release import add_release_command

T = TypeVar("T")


class CommandError(Exception):
    """A user error already phrased for the command line (``raw``: printed as is, e.g. argparse's own line)."""

    def __init__(self, message: str, raw: bool = False) -> None:
        super().__init__(message)
        self.raw = raw


def _convert(args: argparse.Namespace) -> None:
    # Checked before the conversion too, not only when writing at its end.
    if Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        raise CommandError(f"{args.out_dir} exists and is not a folder")
    taken = CommandError(f"{args.out_dir} exists and is not empty; pass --overwrite to replace it")
    if not args.overwrite and _non_empty_dir(args.out_dir):
        raise taken
    try:
        folder = convert_carp(args.checkpoint, args.out_dir, overwrite=args.overwrite)
    except FileExistsError as error:  # save_hub_folder's message names the Python argument overwrite=True
        if args.overwrite or not _non_empty_dir(args.out_dir):
            raise
        raise taken from error
    print(f"wrote {folder}")


def _non_empty_dir(path: str) -> bool:
    folder = Path(path)
    return folder.is_dir() and any(folder.iterdir())


def _push(args: argparse.Namespace) -> None:
    if args.results is not None:
        from .evaluation.card import update_card_from_results

        try:
            update_card_from_results(args.folder, args.results)
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from None
    try:
        url = push_folder(
            args.folder,
            args.repo_id,
            private=args.private,
            token=args.token,
            revision=args.revision,
            commit_message=args.commit_message,
            create_pr=args.create_pr,
        )
    except Exception as error:
        if not _is_network_error(error):
            raise
        raise CommandError(f"could not push {args.folder} to {args.repo_id}: {_network_cause(error)}") from error
    print(url)


#: Modules whose exceptions are the Hub answering, or not answering: HTTP clients and huggingface_hub itself.
_NETWORK_MODULES = ("huggingface_hub", "httpx", "httpcore", "requests", "urllib3")


def _is_network_error(error: BaseException) -> bool:
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return any(cls.__module__.split(".")[0].startswith(_NETWORK_MODULES) for cls in type(error).__mro__)


def _network_cause(error: BaseException) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    detail = getattr(error, "server_message", None) or _first_line(error)
    if status in (401, 403):
        return f"HTTP {status}, not authorised ({detail}); log in with `hf auth login` or pass --token"
    if status is not None:
        return f"HTTP {status} ({detail})"
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"ConnectError", "ConnectionError", "TimeoutException", "Timeout", "TimeoutError"}:
        return f"the Hugging Face Hub cannot be reached ({type(error).__name__}: {detail})"
    return f"{type(error).__name__}: {detail}"


def _pretrain(args: argparse.Namespace) -> None:
    # Imported here: the training stack (accelerate, matplotlib) is not needed by the other subcommands.
    from accelerate import PartialState

    from .pretraining import parse_arguments, pretrain

    parsed = _parse_arguments(args, lambda: parse_arguments(args.arguments, prog="protconv pretrain"))
    result = pretrain(*parsed)
    if PartialState().is_main_process:
        print(f"stopped at step {result.step}" + (f"; model saved to {result.model_dir}" if result.model_dir else ""))


def _finetune(args: argparse.Namespace) -> None:
    from .downstream.finetune import finetune, parse_finetune_arguments

    parsed = _parse_arguments(args, lambda: parse_finetune_arguments(args.arguments, prog="protconv finetune"))
    results = finetune(*parsed)
    for split, metrics in results.items():
        print(split, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


def _baseline(args: argparse.Namespace) -> None:
    import json

    from transformers import HfArgumentParser

    from .downstream.baselines import BaselineArguments, run_baselines
    from .downstream.task_data import TaskDataArguments, load_task_splits

    parser = HfArgumentParser(
        (TaskDataArguments, BaselineArguments),  # type: ignore[arg-type]  # DataClassType: a NewType no class meets
        prog="protconv baseline",
    )
    data_args, options = _parse_arguments(args, lambda: parser.parse_args_into_dataclasses(args=args.arguments))
    splits, _ = load_task_splits(data_args, options.seed)
    results = run_baselines(data_args.task, splits, options)
    for name, result in results.items():
        for split, metrics in result.metrics.items():
            scores = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(f"{name} ({result.chosen}, {result.seconds:.0f}s) {split} {scores}")
    if options.output_file:
        payload = {name: result.summary() for name, result in results.items()}
        with open(options.output_file, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)


#: Subcommands whose options are dataclasses read by HfArgumentParser (their ``--help`` lists them).
_PASS_THROUGH = {
    "pretrain": (_pretrain, "pretrain a protein LM (under `accelerate launch` for several processes)"),
    "finetune": (_finetune, "fine-tune with transformers.Trainer"),
    "baseline": (_baseline, "one-hot linear model and small CNN from scratch on a task's splits"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protconv",
        description="protconv: protein language models.",
        epilog="embed and predict run on several processes (GPUs, machines) under a launcher: "
        "torchrun --nproc-per-node N -m protconv embed ..., or "
        "accelerate launch --num_processes N -m protconv embed ...",
    )
    parser.add_argument("--version", action="version", version=f"protconv {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of errors (before the subcommand; or PROTCONV_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert-carp", help="convert an original CARP .pt checkpoint to a Hub-ready folder")
    convert.add_argument("checkpoint", help="CARP checkpoint (.pt, sequence_models format)")
    convert.add_argument("out_dir", help="folder to write (weights, config, code, tokenizer, model card)")
    convert.add_argument("--overwrite", action="store_true", help="replace out_dir if it exists")
    convert.set_defaults(run=_convert, command_parser=convert)
    push = commands.add_parser("push", help="upload a saved model folder to the Hugging Face Hub")
    push.add_argument("folder")
    push.add_argument("repo_id", help="e.g. my-org/carp-38m")
    push.add_argument("--private", action="store_true", help="create the repository private (if it is new)")
    push.add_argument("--token", help="Hub token (default: `hf auth login`'s, or HF_TOKEN)")
    push.add_argument("--revision", help="branch to commit to (created if missing); with --create_pr, the PR's base")
    push.add_argument("--commit_message", help="default: 'Upload protconv model'")
    push.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    push.add_argument(
        "--results",
        metavar="RESULTS_JSON",
        help="an evaluate results.json: this model's figures go into FOLDER/README.md's model-index before the push",
    )
    push.set_defaults(run=_push, command_parser=push)
    for name, (run, summary) in _PASS_THROUGH.items():
        command = commands.add_parser(name, add_help=False, help=f"{summary}; `{name} --help` lists options")
        command.set_defaults(run=run)
    for add_command in (
        add_embed_command,
        add_score_command,
        add_scan_command,
        add_predict_command,
        add_plot_embeddings_command,
    ):
        command = add_command(commands)
        command.set_defaults(command_parser=command)
    evaluate = add_evaluate_command(commands)
    evaluate.set_defaults(command_parser=evaluate)
    release = add_release_command(commands)
    release.set_defaults(command_parser=release)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (see the module docstring for the rule)."""
    parser = build_parser()
    try:
        args, extra = _quiet_argparse(lambda: parser.parse_known_args(argv))
        if args.command not in _PASS_THROUGH and extra:
            _quiet_argparse(lambda: args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}"))
    except CommandError as error:
        print(error, file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help
        return _exit_code(exit_)
    args.arguments = extra  # the subcommand's own parser (HfArgumentParser dataclasses) reads these
    if args.command in _ONEDNN_CACHE_OFF:
        _turn_off_onednn_cache()
    args.debug = debug = args.debug or os.environ.get("PROTCONV_DEBUG", "") not in ("", "0")
    try:
        args.run(args)
    except SystemExit as exit_:  # `<command> --help`
        return _exit_code(exit_)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"protconv {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug or not is_user_error(error):
            raise
        print(describe_error(error, args), file=sys.stderr)
        return 2
    return 0


#: Commands whose batches change padded width almost every call, so that oneDNN's primitive cache (a compiled
#: kernel per shape, 1024 by default) only grows: off for them (benchmarks/results/embed_memory.md).
_ONEDNN_CACHE_OFF = frozenset({"embed", "score", "predict", "evaluate"})


def _turn_off_onednn_cache() -> None:
    """Set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY=0`` unless the user set it: oneDNN reads it once, when the process
    creates its first primitive, so here, before the subcommand does any torch work."""
    from .inference.embed import ONEDNN_CACHE

    os.environ.setdefault(ONEDNN_CACHE, "0")


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is something the user can fix (exit 2, one line), not a bug (see the module docstring)."""
    return isinstance(error, (CommandError, ValueError, OSError, ImportError, *_loaded_user_errors()))


def _loaded_user_errors() -> tuple[type[BaseException], ...]:
    """Error classes of modules that are loaded: a module that was never imported cannot have raised them."""
    found = []
    for module, names in (
        ("yaml", ("YAMLError",)),
        ("protconv.pretraining", ("CheckpointError", "NonFiniteLossError")),
        ("protconv.metrics", ("NonFiniteError",)),
    ):
        loaded = sys.modules.get(module)
        found += [getattr(loaded, name) for name in names if loaded is not None and hasattr(loaded, name)]
    return tuple(found)


def describe_error(error: BaseException, args: argparse.Namespace) -> str:
    """One line: ``protconv <command>: error: <what and where>``."""
    if isinstance(error, CommandError) and error.raw:
        return str(error)
    return f"protconv {args.command}: error: {_what_and_where(error, args)}"


def _what_and_where(error: BaseException, args: argparse.Namespace) -> str:
    mark = getattr(error, "problem_mark", None)
    if mark is not None and type(error).__module__.startswith("yaml"):  # a YAML syntax error: which file, where
        source, problem = _config_path(args.arguments) or "config", getattr(error, "problem", None)
        return f"{source}: line {mark.line + 1}, column {mark.column + 1}: invalid YAML ({problem})"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        where = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else str(error.filename)
        return f"{where}: {error.strerror}"
    return _first_line(error, join=True)


def _first_line(error: BaseException, join: bool = False) -> str:
    """The message on one line (``join``: all its lines, separated by '; '); the class name if it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return "; ".join(lines) if join else lines[0]


def _config_path(arguments: list[str]) -> str | None:
    for index, argument in enumerate(arguments):
        if argument == "--config" and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith("--config="):
            return argument.split("=", 1)[1]
    return None


def _parse_arguments(args: argparse.Namespace, parse: Callable[[], T]) -> T:
    """Run a subcommand's argument parser; argparse's usage + error lines become its one error line."""
    if args.debug:
        return parse()
    return _quiet_argparse(parse)


def _quiet_argparse(parse: Callable[[], T]) -> T:
    """argparse prints the whole usage (hundreds of lines for TrainingArguments) before its error line and exits
    2: keep only the error line, as a ``CommandError``. Help (exit 0) and a successful parse's output pass on."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            result = parse()
    except SystemExit as exit_:
        if _exit_code(exit_) == 0:
            sys.stderr.write(captured.getvalue())
            raise
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        raise CommandError(lines[-1] if lines else "invalid arguments", raw=True) from None
    sys.stderr.write(captured.getvalue())
    return result


def _exit_code(exit_: SystemExit) -> int:
    code = exit_.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


if __name__ == "__main__":
    sys.exit(main())
