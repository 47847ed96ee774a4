"""In-silico saturation mutagenesis: every single substitution of a wild type, scored by ``score``'s methods.

``scan`` enumerates the 19 substitutions of every position (20 where the wild type holds a non-standard letter
such as ``X``), in the ProteinGym ``mutant`` syntax (``H24C``), and scores them through
:func:`protconv.inference.score.score_variants`: the same code, the same numbers as ``protconv score`` on a CSV of
those mutants. Costs, in masked copies of the sequence run forward: ``masked-marginal`` one per position (not one
per variant), ``wildtype-marginal`` one in all, ``pseudo-likelihood`` ``L`` per variant (slow: for small scans).

The output CSV has ``score``'s columns: ``mutant`` and the score column. ``plot`` draws the position x amino-acid
heatmap (:mod:`protconv.plots.heatmap`), and a measured CSV adds a second panel with the measured effects on the
same grid and the Spearman correlation of the two in its title.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.fasta import read_fasta
from ..file_guards import OutputFileLock
from ..metrics import spearman
from .common import DEFAULT_MAX_TOKENS, DtypeName, InferenceInputError, ModelSession, check_positive
from .distributed import detect_ranks, process_group, step
from .inputs import atomic_text_output, check_input_file, check_not_inputs
from .score import (
    METHODS,
    Mutation,
    ScoreMethod,
    Variant,
    _parse_variants,
    _read_table,
    _targets,
    load_masked_lm,
    read_wildtype,
    score_variants,
    session_device,
)

if TYPE_CHECKING:
    from ..plots.heatmap import HeatmapPanel, MutationGrid

#: The order of the substitutions at a position in the output CSV (alphabetical, as in ProteinGym's files).
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


@dataclass(frozen=True)
class Measured:
    """The measured effects of single substitutions that fall in the scan: ``(position, mutant) -> value``."""

    effects: dict[tuple[int, str], float]
    column: str
    skipped: int  # rows left out: multi-mutants, the wild type, missing values, positions outside the scan


@dataclass(frozen=True)
class ScanResult:
    output: Path
    method: ScoreMethod
    column: str
    variants: list[Variant]
    scores: list[float]
    seconds: float
    forwards: int  # masked copies of the sequence run forward
    plot: Path | None = None
    spearman: float | None = None  # with a measured CSV: over the scanned variants it measures
    spearman_rows: int = 0


def saturation_scan(
    model: str | Path,
    output: str | Path,
    *,
    sequence: str | None = None,
    wildtype: str | Path | None = None,
    method: ScoreMethod = "masked-marginal",
    positions: str | None = None,
    offset: int = 1,
    output_column: str | None = None,
    plot: str | Path | None = None,
    measured: str | Path | None = None,
    score_column: str | None = None,
    mutant_column: str = "mutant",
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS,
    dtype: DtypeName | torch.dtype = "float32",
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ScanResult:
    """Score every single substitution of the wild type (``sequence``, or the one record of the FASTA file
    ``wildtype``) at ``positions`` (``"20-80"`` in the assay's numbering, ``offset`` = the first residue's number;
    default all); write ``output`` and, with ``plot``, the heatmap. Every input is checked before the model loads.
    """
    started = time.perf_counter()
    output = Path(output)
    _check_options(method, max_tokens_per_batch, measured, score_column, plot)
    wt = scan_wildtype(sequence, wildtype)
    indices = parse_positions(positions, wt, offset)
    variants = substitutions(wt, indices, offset)
    truth = read_measured(measured, score_column, mutant_column, wt, offset, indices) if measured else None
    check_not_inputs([output, plot], [wildtype, measured, model])
    column = output_column or method.replace("-", "_")
    if column == "mutant":
        raise InferenceInputError("the output column cannot be called 'mutant' (that column holds the names)")
    ranks = detect_ranks()
    with process_group(ranks), contextlib.ExitStack() as stack:
        with step(ranks, "scan: loading the model"):
            if ranks.is_main:  # the one writer holds the output's lock for the run
                stack.enter_context(OutputFileLock(output))
            session = ModelSession.open(model, dtype, session_device(ranks, device))
            network = load_masked_lm(session, wt)
        scores, forwards = score_variants(session, network, wt, variants, method, max_tokens_per_batch, progress,
                                          ranks)  # fmt: skip
        with step(ranks, f"scan: writing {output}"):
            if ranks.is_main:
                _write_scores(output, column, variants, scores)
    result = ScanResult(output, method, column, variants, scores, time.perf_counter() - started, forwards)
    if truth is not None:
        result = _with_spearman(result, truth)
    if plot is not None and ranks.is_main:
        result = draw_scan(result, wt, indices, offset, _model_name(model), truth, plot)
    return result


def _check_options(
    method: str, max_tokens: int, measured: str | Path | None, score_column: str | None, plot: str | Path | None
) -> None:
    if method not in METHODS:
        raise InferenceInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_positive(max_tokens_per_batch=max_tokens)
    if (measured is None) != (score_column is None):
        raise InferenceInputError("--measured and --score_column go together: the CSV and its column of effects")
    if plot is not None:
        from ..plots.figures import check_image_path

        check_image_path(plot, "the heatmap (--plot)")


def scan_wildtype(sequence: str | None, wildtype: str | Path | None) -> str:
    """The wild type: a sequence, or a FASTA file holding exactly one record (a scan of the wrong protein of a
    multi-record file would look plausible, so several records are refused, counted)."""
    if wildtype is None or sequence is not None:
        return read_wildtype(sequence, wildtype)
    path = check_input_file(wildtype)
    records = [record for record in read_fasta(path)]
    if len(records) != 1:
        found = ", ".join(repr(r.id) for r in records[:3]) + (", ..." if len(records) > 3 else "")
        raise InferenceInputError(
            f"{path}: {len(records)} FASTA records ({found or 'none'}); the wild type of a scan is one record: "
            "keep only the wild type in the file, or pass it with --sequence"
        )
    return records[0].sequence


def parse_positions(text: str | None, wildtype: str, offset: int) -> range:
    """``"20-80"`` (inclusive, in the assay's numbering) or ``"42"`` -> 0-based residue indices; None: all."""
    if text is None:
        return range(len(wildtype))
    last = offset + len(wildtype) - 1
    first_text, _, end_text = text.strip().partition("-")
    try:
        first, end = int(first_text), int(end_text or first_text)
    except ValueError:
        raise InferenceInputError(f"--positions {text!r}: write a range like 20-80 or one position like 42") from None
    if first > end:
        raise InferenceInputError(f"--positions {text!r}: the range is empty ({first} > {end})")
    if first < offset or end > last:
        raise InferenceInputError(
            f"--positions {text!r} is outside the wild type: its {len(wildtype)} residues are positions "
            f"{offset}..{last} with offset {offset}"
        )
    return range(first - offset, end - offset + 1)


def substitutions(wildtype: str, indices: Sequence[int], offset: int) -> list[Variant]:
    """Every single substitution at ``indices``, position by position, mutant letters in ``AMINO_ACIDS`` order;
    each variant's ``line`` is its line in the output CSV."""
    variants: list[Variant] = []
    for index in indices:
        wt = wildtype[index]
        for letter in AMINO_ACIDS:
            if letter != wt:
                name = f"{wt}{index + offset}{letter}"
                variants.append(Variant(len(variants) + 2, name, (Mutation(wt, index + offset, index, letter),)))
    return variants


def read_measured(
    path: str | Path,
    score_column: str | None,
    mutant_column: str,
    wildtype: str,
    offset: int,
    indices: range,
) -> Measured:
    """The single substitutions of a measured CSV (every row checked against the wild type, as ``score`` does);
    a mutant measured twice gets the mean of its values."""
    table, rows = _read_table(path)
    mutant_index = table.column(mutant_column, "the mutant column, e.g. H24C")
    target_index = table.column(score_column or "", "the measured effects (--score_column)")
    variants = _parse_variants(table, rows, mutant_index, wildtype, offset)
    values: dict[tuple[int, str], list[float]] = {}
    skipped = 0
    for variant, value in zip(variants, _targets(table, rows, target_index), strict=True):
        single = variant.mutations[0] if len(variant.mutations) == 1 else None
        if single is None or not math.isfinite(value) or single.index not in indices:
            skipped += 1
            continue
        values.setdefault((single.position, single.mutant), []).append(value)
    if not values:
        raise InferenceInputError(
            f"{table.path}: no single substitution with a measured {table.header[target_index]!r} inside the "
            f"scanned positions ({skipped} rows left out: multi-mutants, the wild type, missing values or other "
            "positions); check --offset and --positions"
        )
    effects = {key: float(np.mean(found)) for key, found in values.items()}
    return Measured(effects, table.header[target_index], skipped)


def _write_scores(output: Path, column: str, variants: list[Variant], scores: list[float]) -> None:
    with atomic_text_output(output) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["mutant", column])
        for variant, value in zip(variants, scores, strict=True):
            writer.writerow([variant.name, repr(value)])


def _with_spearman(result: ScanResult, truth: Measured) -> ScanResult:
    pairs = [
        (value, truth.effects[(v.mutations[0].position, v.mutations[0].mutant)])
        for v, value in zip(result.variants, result.scores, strict=True)
        if (v.mutations[0].position, v.mutations[0].mutant) in truth.effects
    ]
    rho = spearman(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])) if len(pairs) > 1 else math.nan
    return replace(result, spearman=rho, spearman_rows=len(pairs))


def _model_name(model: str | Path) -> str:
    path = Path(model)
    return path.resolve().name if path.exists() else str(model)


# The heatmap (``--plot``); matplotlib is imported only when one is drawn.


def scan_grid(result: ScanResult, wildtype: str, indices: range, offset: int) -> MutationGrid:
    """The scores of ``result`` on the grid of the scanned positions (assay numbering)."""
    from ..plots.heatmap import MutationGrid

    effects = {
        (variant.mutations[0].position, variant.mutations[0].mutant): value
        for variant, value in zip(result.variants, result.scores, strict=True)
    }
    positions = [index + offset for index in indices]
    return MutationGrid.from_effects(positions, "".join(wildtype[i] for i in indices), effects)


def scan_panels(
    result: ScanResult, wildtype: str, indices: range, offset: int, measured: Measured | None
) -> list[HeatmapPanel]:
    from ..plots.heatmap import HeatmapPanel, MutationGrid

    grid = scan_grid(result, wildtype, indices, offset)
    label = f"{result.method} score (vs wild type)"
    panels = [HeatmapPanel(grid, label, f"predicted: {result.method}")]
    if measured is not None:
        rho = "n/a" if result.spearman is None or math.isnan(result.spearman) else f"{result.spearman:.3f}"
        title = f"measured: {measured.column} (Spearman {rho} on {result.spearman_rows} variants)"
        truth = MutationGrid.from_effects(grid.positions, grid.wildtype, measured.effects)
        panels.append(HeatmapPanel(truth, f"measured {measured.column}", title))
    return panels


def draw_scan(
    result: ScanResult,
    wildtype: str,
    indices: range,
    offset: int,
    model_name: str,
    measured: Measured | None,
    path: str | Path,
) -> ScanResult:
    """Write the heatmap to ``path`` (format by extension); the result names it."""
    from ..plots.figures import save_figure
    from ..plots.heatmap import heatmap_figure

    panels = scan_panels(result, wildtype, indices, offset, measured)
    figure = heatmap_figure(panels, f"{model_name} · {result.method}")
    return replace(result, plot=save_figure(figure, path))
