"""The heatmap of a scan (``protconv scan --plot``): the scores on the position x amino-acid grid, and the measured
effects on the same grid when a measured CSV is given."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..plots.figures import save_figure
from ..plots.heatmap import HeatmapPanel, MutationGrid, heatmap_figure

if TYPE_CHECKING:
    from .scan import Measured, ScanResult


def scan_grid(result: ScanResult, wildtype: str, indices: range, offset: int) -> MutationGrid:
    """The scores of ``result`` on the grid of the scanned positions (assay numbering)."""
    effects = {
        (variant.mutations[0].position, variant.mutations[0].mutant): value
        for variant, value in zip(result.variants, result.scores, strict=True)
    }
    positions = [index + offset for index in indices]
    return MutationGrid.from_effects(positions, "".join(wildtype[i] for i in indices), effects)


def scan_panels(
    result: ScanResult, wildtype: str, indices: range, offset: int, measured: Measured | None
) -> list[HeatmapPanel]:
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
    panels = scan_panels(result, wildtype, indices, offset, measured)
    figure = heatmap_figure(panels, f"{model_name} · {result.method}")
    return replace(result, plot=save_figure(figure, path))
