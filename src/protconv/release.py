"""``protconv release``: CARP's four published checkpoints as four Hub repositories, in one command.

Every step that can refuse runs before anything is published: the folder must hold exactly the four ``.pt`` files
of Zenodo record 6564798, each readable and convertible, before the first conversion; each converted model must
reproduce ``sequence_models``' logits on a fixed panel of real proteins, or it is not evaluated, carded or pushed.
The shipped evaluation suite runs through ``evaluation.runner.evaluate`` (the function behind ``protconv
evaluate``), and its task-level figures become each card's ``model-index``. Pushing reuses ``hub.push_folder``
(what ``protconv push`` runs): one ``create_repo`` and one commit per model.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .conversion import (
    CARP_ALPHABET,
    CarpCheckpointError,
    carp_card,
    carp_config,
    carp_state_dict,
    carp_token_map,
    convert_carp,
    load_carp_checkpoint,
    strip_ddp_prefix,
)
from .hub import push_folder
from .modeling import ConvForMaskedLM

#: Where CARP's checkpoints are published (Yang, Fusi, Lu; microsoft/protein-sequence-models, MIT licence).
CARP_RECORD_URL = "https://zenodo.org/records/6564798"
#: The checkpoint files of that record (stems) -> the name of the Hub repository each becomes.
RELEASED_CHECKPOINTS = {
    "carp_600k": "carp-600k",
    "carp_38M": "carp-38m",
    "carp_76M": "carp-76m",
    "carp_640M": "carp-640m",
}
#: Largest |logit difference| against sequence_models allowed on the panel (fp32 on CPU gives ~1e-6).
PARITY_TOLERANCE = 1e-5
#: The parity panel: three real UniRef50 proteins (tests/data/few_proteins.fasta, from ESM's examples, MIT).
PARITY_PANEL = {
    "UniRef50_UPI0003108055": "MPADAREYLESKHATRRFDRPAEVAGVVAFLLSDDTSFVIGAGYLVDGGYTALRAARGRLGPRRQAAPAVKLLPNTDSPR",
    "UniRef50_A0A223SCH7": "MGPPRWWKGITGLAAVVHRADPEDKADLYAKMGLYLEYHPETRIVEARIKPRLHDVCESKVSEGGLEPPCP",
    "UniRef50_A0A090SUK6": (
        "MKTPEDRVFRATDEYSDFVMACRYKGNEREFVIASHDKLNEAQVETLTSYLSGEWFKKTYITGIMNDSDGVLSQHEEYGDEVFCQPLDELRVDRYIMMV"
    ),
}
#: The shipped suite, from a clone (its data files are examples/data and tests/data).
DEFAULT_SUITE = Path("examples/suites/tiny.yaml")


class ReleaseError(ValueError):
    """The release cannot go on (or a model failed its parity check): what, and which file or model."""


@dataclass(frozen=True)
class ReleaseOptions:
    carp_dir: Path
    organization: str
    output_dir: Path
    dry_run: bool = False
    suite: Path = DEFAULT_SUITE
    private: bool = False
    token: str | None = None
    overwrite: bool = False
    tolerance: float = PARITY_TOLERANCE
    bootstrap: int = 100


@dataclass
class ReleasedModel:
    """One checkpoint's outcome; ``url`` is the Hub commit (None in a dry run or when parity failed)."""

    checkpoint: str
    repo_id: str
    folder: str
    parity_max_abs_diff: float
    passed: bool
    results: list[dict[str, Any]] = field(default_factory=list)
    url: str | None = None


def find_checkpoints(carp_dir: Path) -> dict[str, Path]:
    """The four checkpoints, each read and mapped once (not converted): a missing, extra or damaged file is
    refused here, before any conversion, naming the file."""
    if not carp_dir.is_dir():
        raise ReleaseError(f"{carp_dir}: not a folder (expected the four CARP .pt files of {CARP_RECORD_URL})")
    found = {path.stem: path for path in sorted(carp_dir.glob("*.pt"))}
    missing = [f"{stem}.pt" for stem in RELEASED_CHECKPOINTS if stem not in found]
    extra = [path.name for stem, path in found.items() if stem not in RELEASED_CHECKPOINTS]
    if missing or extra:
        what = [f"missing {', '.join(missing)}"] * bool(missing) + [f"unexpected {', '.join(extra)}"] * bool(extra)
        raise ReleaseError(
            f"{carp_dir}: {'; '.join(what)} (expected exactly {', '.join(f'{s}.pt' for s in RELEASED_CHECKPOINTS)}, "
            f"from {CARP_RECORD_URL})"
        )
    for path in found.values():
        data = load_carp_checkpoint(path)
        carp_state_dict(data["model_state_dict"], carp_config(data, path), path)
        for key in ("slim", "d_embed", "d_model", "n_layers", "kernel_size"):
            if key not in data:
                raise CarpCheckpointError(f"{path}: hyper-parameter {key!r} missing (sequence_models needs it)")
    return {stem: found[stem] for stem in RELEASED_CHECKPOINTS}


def reference_logits(checkpoint: Path, sequences: Sequence[str]) -> list[torch.Tensor]:
    """sequence_models' own ``ByteNetLM``, built as its ``pretrained.load_carp`` builds it (that module imports
    scipy, which protconv does not need), on each sequence, in CARP's 30-token order."""
    try:
        from sequence_models.constants import MASK, PROTEIN_ALPHABET
        from sequence_models.convolutional import ByteNetLM
    except ImportError as error:
        raise ImportError(
            f"protconv release checks parity against sequence_models: pip install sequence-models==1.8.0 ({error})"
        ) from error
    data = load_carp_checkpoint(checkpoint)
    reference = ByteNetLM(len(PROTEIN_ALPHABET), data["d_embed"], data["d_model"], data["n_layers"],
                          data["kernel_size"], data["r"], dropout=0.0, activation=data["activation"], causal=False,
                          padding_idx=PROTEIN_ALPHABET.index(MASK), final_ln=True, slim=data["slim"])  # fmt: skip
    reference.load_state_dict(strip_ddp_prefix(data["model_state_dict"]))
    reference.eval()
    logits = []
    with torch.no_grad():
        for sequence in sequences:
            tokens = torch.tensor([[PROTEIN_ALPHABET.index(char) for char in sequence]])
            logits.append(reference(tokens, input_mask=torch.ones(*tokens.shape, 1, dtype=torch.bool))[0])
    return logits


def parity_difference(checkpoint: Path, folder: Path, sequences: Sequence[str]) -> float:
    """Largest |logit difference| between the converted folder (loaded as a user would) and sequence_models."""
    from .model_source import load_tokenizer

    model = ConvForMaskedLM.from_pretrained(folder).eval()
    tokenizer = load_tokenizer(folder)
    columns = [carp_token_map()[index] for index in range(len(CARP_ALPHABET))]
    worst = 0.0
    with torch.no_grad():
        for sequence, theirs in zip(sequences, reference_logits(checkpoint, sequences), strict=True):
            ours = model(**tokenizer(sequence, return_tensors="pt")).logits[0][:, columns]
            if ours.shape != theirs.shape:
                return float("inf")  # a tokenizer that adds or drops positions is a parity failure too
            worst = max(worst, float((ours - theirs).abs().max()))
    return worst


def release(options: ReleaseOptions) -> list[ReleasedModel]:
    """Check, convert, compare, evaluate, card and (unless ``dry_run``) push; ``OUTPUT/release.json`` records each
    model's outcome. Raises ``ReleaseError`` at the end if any model failed parity (the others are published)."""
    from .evaluation.suite import read_suite

    checkpoints = find_checkpoints(options.carp_dir)
    tasks = read_suite(options.suite)  # a bad suite stops the release before any conversion, too
    _check_targets(options)
    released = [_convert_and_compare(stem, path, options) for stem, path in checkpoints.items()]
    passed = [model for model in released if model.passed]
    if passed:
        _evaluate_and_card(passed, checkpoints, tasks, options)
    for model in passed if not options.dry_run else []:
        model.url = _push(model, options)
    summary = [asdict(model) for model in released]
    (options.output_dir / "release.json").write_text(json.dumps(summary, indent=2, allow_nan=False, default=str))
    failed = [model for model in released if not model.passed]
    if failed:
        raise ReleaseError(
            "parity with sequence_models failed for "
            + ", ".join(f"{m.checkpoint} (max |logit difference| {m.parity_max_abs_diff:.2e})" for m in failed)
            + f" > {options.tolerance:g}: not published; the others are in {options.output_dir / 'release.json'}"
        )
    return released


def _check_targets(options: ReleaseOptions) -> None:
    if options.output_dir.exists() and not options.output_dir.is_dir():
        raise ReleaseError(f"{options.output_dir} exists and is not a folder")
    for name in RELEASED_CHECKPOINTS.values():
        target = options.output_dir / name
        if not options.overwrite and target.is_dir() and any(target.iterdir()):
            raise ReleaseError(f"{target} exists and is not empty; pass --overwrite to replace it")
    options.output_dir.mkdir(parents=True, exist_ok=True)


def _convert_and_compare(stem: str, checkpoint: Path, options: ReleaseOptions) -> ReleasedModel:
    folder = convert_carp(checkpoint, options.output_dir / RELEASED_CHECKPOINTS[stem], overwrite=True)
    difference = parity_difference(checkpoint, folder, list(PARITY_PANEL.values()))
    passed = difference <= options.tolerance
    print(f"{stem}: max |logit difference| against sequence_models {difference:.2e} ({'ok' if passed else 'FAILED'})")
    repo_id = f"{options.organization}/{RELEASED_CHECKPOINTS[stem]}"
    return ReleasedModel(stem, repo_id, str(folder), difference, passed)


def _evaluate_and_card(
    models: list[ReleasedModel], checkpoints: dict[str, Path], tasks: list, options: ReleaseOptions
) -> None:
    from .evaluation.card import card_results
    from .evaluation.runner import EvaluateOptions, evaluate

    evaluation = EvaluateOptions(options.output_dir / "evaluation", overwrite=options.overwrite,
                                 bootstrap=options.bootstrap)  # fmt: skip
    result = evaluate([model.folder for model in models], tasks, evaluation)
    print(result.table, end="")
    kinds = {task.name: task.kind for task in tasks}
    for model in models:
        results = card_results(result.records, model.folder, kinds)
        model.results = [asdict(figure) for figure in results]
        _write_card(model, checkpoints[model.checkpoint], results, options)


def _write_card(model: ReleasedModel, checkpoint: Path, results: list, options: ReleaseOptions) -> None:
    network = ConvForMaskedLM.from_pretrained(model.folder)
    source = f"`{checkpoint.name}` of Zenodo record 6564798 ({CARP_RECORD_URL})"
    card = carp_card(
        network,
        model.checkpoint,
        checkpoint.name,
        reference=model.repo_id,
        details={
            "base model": f"CARP {model.checkpoint} (Zenodo record 6564798)",
            "parity (max abs logit difference)": f"{model.parity_max_abs_diff:.1e} on {len(PARITY_PANEL)} proteins",
        },
        results=results,
        sections={
            "Source and licence": f"Converted from {source}, the weights CARP's authors published with "
            "`sequence_models` (microsoft/protein-sequence-models, MIT licence); this repository is MIT too. "
            f"`protconv release` checked the converted model against `sequence_models.pretrained.load_carp` on "
            f"{len(PARITY_PANEL)} real UniRef50 proteins (largest logit difference "
            f"{model.parity_max_abs_diff:.1e}) and evaluated it on the suite `{options.suite.name}`.",
        },
    )
    (Path(model.folder) / "README.md").write_text(str(card), encoding="utf-8")


def _push(model: ReleasedModel, options: ReleaseOptions) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        url = push_folder(model.folder, model.repo_id, private=options.private, token=options.token,
                          commit_message=f"protconv release of CARP {model.checkpoint}")  # fmt: skip
    except (HfHubHTTPError, OSError) as error:
        raise ReleaseError(
            f"could not push {model.folder} to {model.repo_id}: {type(error).__name__}: {error}"
        ) from error
    print(f"{model.checkpoint}: pushed to {url}")
    return url


def add_release_command(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "release",
        help="convert, check, evaluate, card and push CARP's four published checkpoints",
        description=f"CARP_DIR holds carp_600k.pt, carp_38M.pt, carp_76M.pt and carp_640M.pt ({CARP_RECORD_URL}). "
        "Each is converted to OUTPUT_DIR/carp-*, compared with sequence_models on real proteins, evaluated on "
        "--suite, given a card, and pushed to ORGANIZATION/carp-* (not with --dry_run).",
    )
    parser.add_argument("carp_dir", metavar="CARP_DIR")
    parser.add_argument("--organization", required=True, help="Hub user or organisation the four repos go to")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--dry_run", action="store_true", help="write the four folders only; push nothing")
    parser.add_argument("--suite", default=str(DEFAULT_SUITE), help=f"evaluation suite (default {DEFAULT_SUITE})")
    parser.add_argument("--private", action="store_true", help="create the repositories private")
    parser.add_argument("--token", help="Hub token (default: `hf auth login`'s, or HF_TOKEN)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing folders in --output_dir")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples per assay (default 100)")
    parser.set_defaults(run=_run)
    return parser


def _run(args: argparse.Namespace) -> None:
    options = ReleaseOptions(
        carp_dir=Path(args.carp_dir),
        organization=args.organization,
        output_dir=Path(args.output_dir),
        dry_run=args.dry_run,
        suite=Path(args.suite),
        private=args.private,
        token=args.token,
        overwrite=args.overwrite,
        bootstrap=args.bootstrap,
    )
    for model in release(options):
        print(f"{model.repo_id}: {model.url or 'written to ' + model.folder + ' (dry run)'}")
