"""argparse subcommands ``embed``, ``score`` and ``predict``, thin over :mod:`protconv.inference`, for the
``protconv`` command to mount::

    commands = parser.add_subparsers(dest="command")
    add_embed_command(commands)
    add_score_command(commands)
    add_predict_command(commands)
    args = parser.parse_args()
    args.run(args)

Each builder returns its parser and sets ``run`` (a callable taking the parsed namespace). User errors are
raised as ``ValueError``/``FileNotFoundError``/``FileExistsError`` subclasses with one-line messages.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, get_args

from ..data.fasta import DuplicateIds
from ..plots.projection import PROJECTIONS
from ..tokenization.validation import UnknownPolicy
from .common import DEFAULT_MAX_TOKENS, DTYPES
from .distributed import detect_ranks
from .score import METHODS, score

_DEVICE_HELP = "cpu, cuda, cuda:1, ... (default: auto, the GPU when there is one)"
_TOKENS_HELP = (
    "token budget of a batch, padding and special tokens included (default %(default)s); sequences are never "
    "cropped: a longer one runs alone"
)


def _common_options(parser: argparse.ArgumentParser, unknown: bool = True) -> None:
    parser.add_argument("--max_tokens_per_batch", type=int, default=DEFAULT_MAX_TOKENS, help=_TOKENS_HELP)
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="compute dtype (default float32)")
    parser.add_argument("--device", default="auto", help=_DEVICE_HELP)
    if unknown:
        parser.add_argument(
            "--unknown",
            choices=list(get_args(UnknownPolicy)),
            default="error",
            help="a character outside the amino-acid alphabet: error naming the record and position (default), "
            "or map it to X",
        )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def _duplicate_ids_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duplicate_ids",
        choices=list(get_args(DuplicateIds)),
        default="error",
        help="a FASTA record whose id repeats an earlier one: error (default), skip it, or rename it <id>#2, ...",
    )


def _common_values(args: argparse.Namespace, unknown: bool = True) -> dict[str, Any]:
    """The keyword arguments of the options that ``_common_options`` added."""
    values = {
        "max_tokens_per_batch": args.max_tokens_per_batch,
        "dtype": args.dtype,
        "device": args.device,
        "progress": not args.no_progress,
    }
    if unknown:
        values["unknown"] = args.unknown
    return values


def add_embed_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "embed",
        help="embed the proteins of a FASTA file into an HDF5 file (mean and/or per-residue)",
        description=(
            "Embed every FASTA record into OUTPUT.h5: one group per record id with datasets 'mean' (n_layers, "
            "hidden) and/or 'per_residue' (n_layers, residues, hidden), residues only, and attributes 'layers' and "
            "'length'. Sequences run whole: a model with learned absolute positions (position_embedding_type="
            "'absolute') refuses a record longer than its max_position_embeddings before any work. Re-running the "
            "same command continues a killed run, skipping the records already written. The root dataset 'ids' "
            "lists the records in FASTA order (read it for the file's order); --stack adds the matrix 'mean'. "
            "--format parquet writes a folder of Parquet shards instead, one row per record."
        ),
    )
    parser.add_argument("model", help="model folder or Hugging Face Hub id")
    parser.add_argument("fasta", help="FASTA file (plain or gzip); record ids (first header word) must be unique")
    parser.add_argument("output", help="HDF5 file to write (or to continue); with --format parquet, a folder")
    parser.add_argument(
        "--include",
        default="mean",
        help="comma list of mean, per_residue, cls (the <cls> state, for pooling='cls' models); default mean",
    )
    _layers_option(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT instead of continuing it")
    parser.add_argument(
        "--recompute_changed",
        action="store_true",
        help="continuing OUTPUT: recompute the records whose sequence changed (default: refuse them)",
    )
    parser.add_argument(
        "--drop_missing",
        action="store_true",
        help="continuing OUTPUT: remove the records that are no longer in the FASTA file (default: keep, warn)",
    )
    _duplicate_ids_option(parser)
    _storage_options(parser)
    _common_options(parser)
    parser.set_defaults(run=run_embed)
    return parser


def _storage_options(parser: argparse.ArgumentParser) -> None:
    """How ``embed`` stores what it computes (the choices are ``embed``'s Literal aliases)."""
    from .embed import DEFAULT_CHUNK_SIZE, Compression, OutputFormat, StorageDtype

    parser.add_argument(
        "--format",
        dest="output_format",
        choices=list(get_args(OutputFormat)),
        default="hdf5",
        help="hdf5 (default): OUTPUT is one HDF5 file; parquet: OUTPUT is a folder of Parquet shards, one row per "
        "record (id, index, length, <item>_<layer> vectors), for datasets.load_dataset('parquet') and pandas",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="HDF5: also write the root dataset 'mean' (records x layers x hidden, rows in the order of the root "
        "dataset 'ids'), so the whole file loads in one read",
    )
    parser.add_argument(
        "--compression",
        choices=list(get_args(Compression)),
        default="none",
        help="none (default), gzip or lzf (HDF5 filters, of the per-residue datasets and the stack; parquet: none "
        "or gzip); a setting of the file: a resume must pass the same",
    )
    parser.add_argument(
        "--chunk_size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help="records read (and planned) at a time, so memory does not grow with the file; with --format parquet "
        "the records of a shard, and what a killed run loses at most (default %(default)s)",
    )
    parser.add_argument(
        "--storage_dtype",
        choices=list(get_args(StorageDtype)),
        default="float32",
        help="the type values are stored in (computation is unchanged): float32 (default) or float16 (half the "
        "size); a setting of the file: a resume must pass the same",
    )


#: ``--layers`` values that argparse must read as values, not options: negative indices and comma lists
#: (``-1``, ``-1,-2``, ``-1,last``). argparse takes any other word that starts with ``-`` for an option.
_LAYER_VALUES = re.compile(r"^-\d+(,\s*(-?\d+|last))*$", re.IGNORECASE)
_LAYER_ITEM = re.compile(r"^(-?\d+|last)$", re.IGNORECASE)


def _layers_option(parser: argparse.ArgumentParser) -> None:
    """``--layers -1 -2``, ``--layers -1,-2`` and ``--layers=-1,-2`` alike (ESM users write the first)."""
    parser.add_argument(
        "--layers",
        nargs="+",
        type=_layer_value,
        default=None,
        help="hidden_states indices (0 = embedding output, -1 = last block before the final LayerNorm) and/or "
        "'last' (last_hidden_state, what pooler_output pools), space- or comma-separated: --layers -1 -2, "
        "--layers=-1,-2; default last",
    )
    # argparse's own rule for "is this a value": a negative number (-1), not a comma list of them (-1,-2).
    parser._negative_number_matcher = _LAYER_VALUES


def _layer_value(text: str) -> str:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all(_LAYER_ITEM.match(item) for item in items):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither 'last' nor a layer index (write the layers after the model, FASTA and output "
            "arguments, e.g. --layers -1 -2 or --layers=-1,-2)"
        )
    return text


def run_embed(args: argparse.Namespace) -> None:
    from .embed import embed

    result = embed(
        args.model,
        args.fasta,
        args.output,
        include=args.include,
        layers=",".join(args.layers) if args.layers else None,
        overwrite=args.overwrite,
        recompute_changed=args.recompute_changed,
        drop_missing=args.drop_missing,
        duplicate_ids=args.duplicate_ids,
        output_format=args.output_format,
        stack=args.stack,
        compression=args.compression,
        storage_dtype=args.storage_dtype,
        chunk_size=args.chunk_size,
        **_common_values(args),
    )
    skipped = f" ({result.skipped} already present)" if result.skipped else ""
    if detect_ranks().is_main:  # one line for a run on N processes
        print(f"wrote {result.written} records to {result.output}{skipped} in {result.seconds:.1f}s")


def add_score_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="zero-shot variant effect scores from a masked LM (ESM-1v style)",
        description=(
            "Score the variants of a CSV file (ProteinGym/ESM mutant syntax: H24C, multi-mutants H24C:A25D) against "
            "a wild type. Writes the table with one added column; with --score_column, prints the Spearman "
            "correlation with that column and writes it to OUTPUT's stem + .spearman.json."
        ),
    )
    parser.add_argument("model", help="masked-LM model folder or Hugging Face Hub id")
    parser.add_argument("variants", help="CSV/TSV file with a mutant column")
    parser.add_argument("output", help="CSV file to write: the input table plus the score column")
    wild = parser.add_mutually_exclusive_group(required=True)
    wild.add_argument("--sequence", help="the wild-type sequence")
    wild.add_argument("--wildtype", help="FASTA file whose first record is the wild type")
    parser.add_argument("--mutant_column", default="mutant", help="column of mutant names (default mutant)")
    parser.add_argument("--offset", type=int, default=1, help="number of the wild type's first residue (default 1)")
    parser.add_argument(
        "--method",
        choices=list(METHODS),
        default="masked-marginal",
        help="masked-marginal (default; one forward per mutated position), wildtype-marginal (one forward), "
        "pseudo-likelihood (L forwards per distinct sequence: slow)",
    )
    parser.add_argument("--output_column", help="name of the added column (default: the method, '_' for '-')")
    parser.add_argument("--score_column", help="measured column to correlate with (Spearman); NaN/empty rows skipped")
    _common_options(parser, unknown=False)
    parser.set_defaults(run=run_score)
    return parser


def run_score(args: argparse.Namespace) -> None:
    result = score(
        args.model,
        args.variants,
        args.output,
        sequence=args.sequence,
        wildtype=args.wildtype,
        mutant_column=args.mutant_column,
        offset=args.offset,
        method=args.method,
        output_column=args.output_column,
        score_column=args.score_column,
        **_common_values(args, unknown=False),
    )
    if not detect_ranks().is_main:  # rank 0 wrote the output and reports it
        return
    print(f"wrote {len(result.scores)} {result.method} scores to {result.output} in {result.seconds:.1f}s")
    if result.metrics_file is not None:
        missing = f"; {result.missing_targets} rows without a target left out" if result.missing_targets else ""
        print(f"spearman={result.spearman:.4f} on {result.spearman_rows} rows{missing} ({result.metrics_file})")


def add_scan_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "scan",
        help="score every single substitution of a wild type (in-silico saturation mutagenesis), with a heatmap",
        description=(
            "Score the 19 substitutions of every position of the wild type with a score method and write them in "
            "the ProteinGym mutant syntax, with score's columns (mutant, score). masked-marginal runs one masked "
            "forward per position, wildtype-marginal one forward. --plot draws the position x amino-acid heatmap "
            "(amino acids in the order RHKDESTNQCGPAVILMFYW, the wild type black, a per-position mean row); with "
            "--measured and --score_column, a second panel shows the measured effects and the Spearman."
        ),
    )
    parser.add_argument("model", help="masked-LM model folder or Hugging Face Hub id")
    parser.add_argument("output", help="CSV file to write: mutant and the score column")
    wild = parser.add_mutually_exclusive_group(required=True)
    wild.add_argument("--sequence", help="the wild-type sequence")
    wild.add_argument("--wildtype", help="FASTA file holding the wild type (one record)")
    parser.add_argument("--positions", help="range to scan in the assay's numbering, e.g. 20-80 (default: all)")
    parser.add_argument("--offset", type=int, default=1, help="number of the wild type's first residue (default 1)")
    parser.add_argument(
        "--method",
        choices=list(METHODS),
        default="masked-marginal",
        help="masked-marginal (default; one forward per position), wildtype-marginal (one forward), "
        "pseudo-likelihood (L forwards per variant: small scans only)",
    )
    parser.add_argument("--output_column", help="name of the score column (default: the method, '_' for '-')")
    parser.add_argument("--plot", help="heatmap image to write (.png, .svg or .pdf)")
    parser.add_argument("--measured", help="CSV of measured effects (mutant column) for a second heatmap panel")
    parser.add_argument("--score_column", help="the --measured column of effects; the Spearman is printed")
    parser.add_argument(
        "--mutant_column", default="mutant", help="--measured's column of mutant names (default mutant)"
    )
    _common_options(parser, unknown=False)
    parser.set_defaults(run=run_scan)
    return parser


def run_scan(args: argparse.Namespace) -> None:
    from .scan import saturation_scan

    result = saturation_scan(
        args.model,
        args.output,
        sequence=args.sequence,
        wildtype=args.wildtype,
        method=args.method,
        positions=args.positions,
        offset=args.offset,
        output_column=args.output_column,
        plot=args.plot,
        measured=args.measured,
        score_column=args.score_column,
        mutant_column=args.mutant_column,
        **_common_values(args, unknown=False),
    )
    if not detect_ranks().is_main:  # rank 0 wrote the output and reports it
        return
    drawn = f"; heatmap {result.plot}" if result.plot else ""
    print(f"wrote {len(result.scores)} {result.method} scores to {result.output} in {result.seconds:.1f}s{drawn}")
    if result.spearman is not None:
        print(f"spearman={result.spearman:.4f} on {result.spearman_rows} measured variants")


def add_plot_embeddings_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "plot-embeddings",
        help="a 2-D map (PCA, UMAP, t-SNE) of an embed HDF5 file, coloured by a label",
        description=(
            "Project the records of an embed HDF5 file to 2-D and colour them by a column of a labels table (ids "
            "in an id column): a legend of the most frequent classes, or a colour bar for numbers; records without "
            "a label are grey. --color_by length needs no table. PCA axes show the fraction of variance explained."
        ),
    )
    parser.add_argument("embeddings", help="HDF5 file written by protconv embed")
    parser.add_argument("output", help="image to write (.png, .svg or .pdf)")
    parser.add_argument("--labels", help="CSV/TSV table with an id column (the FASTA record ids) and label columns")
    parser.add_argument("--color_by", help="the labels column to colour by, or 'length' (no table needed)")
    parser.add_argument("--id_column", help="the labels table's id column (default: id, record or name)")
    parser.add_argument("--layer", help="a layer the file holds, e.g. last or 16 (default: last, else the last one)")
    parser.add_argument("--method", choices=list(PROJECTIONS), default="pca", help="projection (default pca)")
    parser.add_argument("--max_points", type=int, default=5000, help="seeded subsample above this (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsample and of UMAP/t-SNE (default 0)")
    parser.add_argument("--categorical", action="store_true", help="colour by classes even if the values are numbers")
    parser.add_argument("--top_classes", type=int, default=10, help="classes with a colour; the rest grey (default 10)")
    parser.add_argument("--coordinates", help="also write the points drawn (id, x, y, label) to this CSV")
    parser.set_defaults(run=run_plot_embeddings)
    return parser


def run_plot_embeddings(args: argparse.Namespace) -> None:
    from .embedding_map import plot_embeddings

    result = plot_embeddings(
        args.embeddings,
        args.output,
        labels=args.labels,
        color_by=args.color_by,
        id_column=args.id_column,
        layer=args.layer,
        method=args.method,
        max_points=args.max_points,
        seed=args.seed,
        categorical=args.categorical,
        top_classes=args.top_classes,
        coordinates=args.coordinates,
    )
    labelled = f" ({result.labelled} labelled)" if result.labelled else ""
    print(f"wrote a map of {result.points} records{labelled} to {result.output}")


def add_predict_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="predictions of a fine-tuned model on a FASTA or CSV file",
        description=(
            "Predict with a fine-tuned sequence- or token-classification model (the class is read from "
            "config.architectures): regression value, class name and probability, or one label per residue."
        ),
    )
    parser.add_argument("model", help="fine-tuned model folder or Hugging Face Hub id")
    parser.add_argument("input", help="FASTA file, or CSV/TSV table with a sequence column")
    parser.add_argument("output", help="CSV file to write")
    parser.add_argument("--sequence_column", help="CSV input: the sequence column (default: sequence or seq)")
    _duplicate_ids_option(parser)
    _common_options(parser)
    parser.set_defaults(run=run_predict)
    return parser


def run_predict(args: argparse.Namespace) -> None:
    from .predict import predict

    result = predict(
        args.model,
        args.input,
        args.output,
        sequence_column=args.sequence_column,
        duplicate_ids=args.duplicate_ids,
        **_common_values(args),
    )
    if detect_ranks().is_main:
        print(f"wrote {result.records} {result.task} predictions to {result.output} in {result.seconds:.1f}s")
