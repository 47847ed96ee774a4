"""The ``protconv`` command."""

from __future__ import annotations

import argparse
import sys

from .conversion import CarpCheckpointError, convert_carp
from .hub import push_folder


def _convert(args: argparse.Namespace) -> None:
    folder = convert_carp(args.checkpoint, args.out_dir, overwrite=args.overwrite)
    print(f"wrote {folder}")


def _push(args: argparse.Namespace) -> None:
    print(push_folder(args.folder, args.repo_id, private=args.private))


def _pretrain(args: argparse.Namespace) -> None:
    # Imported here: the training stack (accelerate, matplotlib) is not needed by the other subcommands.
    from accelerate import PartialState

    from .pretraining import parse_arguments, pretrain

    result = pretrain(*parse_arguments(args.arguments, prog="protconv pretrain"))
    if PartialState().is_main_process:
        print(f"stopped at step {result.step}" + (f"; model saved to {result.model_dir}" if result.model_dir else ""))


def _finetune(args: argparse.Namespace) -> None:
    from .downstream.finetune import finetune, parse_finetune_arguments

    results = finetune(*parse_finetune_arguments(args.arguments))
    for split, metrics in results.items():
        print(split, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


def _baseline(args: argparse.Namespace) -> None:
    import json

    from transformers import HfArgumentParser

    from .downstream.baselines import BaselineArguments, run_baselines
    from .downstream.task_data import TaskDataArguments, load_task_splits

    data_args, options = HfArgumentParser((TaskDataArguments, BaselineArguments)).parse_args_into_dataclasses(
        args=args.arguments
    )
    splits, _ = load_task_splits(data_args, options.seed)
    results = run_baselines(data_args.task, splits, options)
    for name, result in results.items():
        for split, metrics in result.metrics.items():
            scores = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(f"{name} ({result.chosen}, {result.seconds:.0f}s) {split} {scores}")
    if options.output_file:
        payload = {name: vars(result) for name, result in results.items()}
        with open(options.output_file, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)


#: Subcommands whose options are dataclasses read by HfArgumentParser (their ``--help`` lists them).
_PASS_THROUGH = {
    "pretrain": (_pretrain, "pretrain a protein LM (under `accelerate launch` for several processes)"),
    "finetune": (_finetune, "fine-tune with transformers.Trainer"),
    "baseline": (_baseline, "one-hot linear model and small CNN from scratch on a task's splits"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protconv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert-carp", help="convert an original CARP .pt checkpoint to a Hub-ready folder")
    convert.add_argument("checkpoint", help="CARP checkpoint (.pt, sequence_models format)")
    convert.add_argument("out_dir", help="folder to write (weights, config, code, tokenizer, model card)")
    convert.add_argument("--overwrite", action="store_true", help="replace out_dir if it exists")
    convert.set_defaults(run=_convert)
    push = commands.add_parser("push", help="upload a saved model folder to the Hugging Face Hub")
    push.add_argument("folder")
    push.add_argument("repo_id", help="e.g. my-org/carp-38m")
    push.add_argument("--private", action="store_true")
    push.set_defaults(run=_push)
    for name, (run, summary) in _PASS_THROUGH.items():
        command = commands.add_parser(name, add_help=False, help=f"{summary}; `{name} --help` lists options")
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command not in _PASS_THROUGH and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.arguments = extra  # the subcommand's own parser (HfArgumentParser dataclasses) reads these
    try:
        args.run(args)
    except (CarpCheckpointError, FileExistsError, FileNotFoundError, *_pretraining_errors()) as error:
        print(f"protconv {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _pretraining_errors() -> tuple[type[Exception], ...]:
    """User-facing failures of a pretraining run: reported in one line, without a traceback."""
    from .data.task_files import TaskDataError
    from .pretraining import CheckpointError, NonFiniteLossError
    from .tokenization import InvalidSequenceError

    return CheckpointError, NonFiniteLossError, InvalidSequenceError, TaskDataError


if __name__ == "__main__":
    sys.exit(main())
