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

    from .training import parse_arguments, pretrain

    result = pretrain(*parse_arguments(args.arguments))
    if PartialState().is_main_process:
        print(f"stopped at step {result.step}" + (f"; model saved to {result.model_dir}" if result.model_dir else ""))


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
    pretrain = commands.add_parser(
        "pretrain",
        add_help=False,
        help="pretrain a masked LM (under `accelerate launch` for several processes); `pretrain --help` lists options",
    )
    pretrain.set_defaults(run=_pretrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command != "pretrain" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.arguments = extra  # pretrain's own parser (HfArgumentParser dataclasses + YAML) reads these
    try:
        args.run(args)
    except (CarpCheckpointError, FileExistsError, FileNotFoundError, *_pretraining_errors()) as error:
        print(f"protconv {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _pretraining_errors() -> tuple[type[Exception], ...]:
    """User-facing failures of a pretraining run: reported in one line, without a traceback."""
    from .tokenization import InvalidSequenceError
    from .training import CheckpointError, NonFiniteLossError

    return CheckpointError, NonFiniteLossError, InvalidSequenceError


if __name__ == "__main__":
    sys.exit(main())
