"""The ``protconv evaluate`` subcommand: parse, read and check every task's data (before any model is loaded),
run, print the table."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..inference.common import DEFAULT_MAX_TOKENS, DTYPES
from ..inference.score import METHODS


def add_evaluate_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="benchmark models side by side (zero-shot fitness, ProteinGym layout), reference columns beside",
        description="Evaluate one or more models on a suite of tasks; results.json, results.md, results.csv and "
        "per-assay CSVs in --output_dir. A rerun reuses finished tasks; --overwrite recomputes.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model folders or Hugging Face Hub ids")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--suite", help="suite YAML: a list of tasks (examples/suites/)")
    source.add_argument("--proteingym", help="a ProteinGym folder of per-assay CSVs and DMS_substitutions.csv")
    parser.add_argument("--reference_file", help="with --proteingym: default DIR/DMS_substitutions.csv")
    parser.add_argument("--method", choices=list(METHODS), default="masked-marginal", help="with --proteingym")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--overwrite", action="store_true", help="recompute every task instead of reusing")
    parser.add_argument(
        "--update_card", action="store_true", help="write the results into each model folder's README.md model-index"
    )
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples per assay (default 100)")
    parser.add_argument("--max_tokens_per_batch", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no_progress", action="store_true")
    parser.set_defaults(run=_run)
    return parser


def _run(args: argparse.Namespace) -> None:
    from ..inference.distributed import detect_ranks
    from .runner import EvaluateOptions, evaluate
    from .suite import SuiteError, proteingym_task, read_suite

    if args.reference_file and not args.proteingym:
        raise SuiteError("--reference_file goes with --proteingym (a suite names its own reference files)")
    tasks = (
        read_suite(args.suite) if args.suite else [proteingym_task(args.proteingym, args.reference_file, args.method)]
    )
    options = EvaluateOptions(Path(args.output_dir), args.overwrite, args.max_tokens_per_batch, args.dtype,
                              args.device, args.bootstrap, not args.no_progress)  # fmt: skip
    result = evaluate(args.models, tasks, options)
    if not detect_ranks().is_main:  # on N processes rank 0 wrote the outputs and reports them
        return
    print(result.table, end="")
    if args.update_card:
        from .card import update_cards

        for readme in update_cards(result.records, args.models, {task.name: task.kind for task in tasks}):
            print(f"updated {readme}")
    print(f"{result.computed} computed, {result.reused} reused; wrote {options.output_dir}/results.json")
