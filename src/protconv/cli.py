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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (CarpCheckpointError, FileExistsError, FileNotFoundError) as error:
        print(f"protconv {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
