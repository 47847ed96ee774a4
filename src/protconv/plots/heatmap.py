"""Position x amino-acid heatmaps of single-substitution effects (in-silico saturation mutagenesis).

The 20 amino acids run down the y axis in ``HEATMAP_ORDER``: positive (R H K), negative (D E), polar (S T N Q),
the special cases (C G P), hydrophobic (A V I L M) and aromatic (F Y W), so that a column reads as a physico-
chemical profile of its position. Positions run along x in the assay's numbering; the wild-type residue of each
column is drawn black (and written above the column), a missing value light grey. Under every panel a one-row
strip holds the position's mean effect over its substitutions. The colour scale diverges around 0 (red: below the
wild type, blue: above) with limits symmetric in the largest magnitude, so white always means "as the wild type".
Long proteins are cut into panel rows of ``positions_per_row`` columns, all of the same cell size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .figures import pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The y order of the heatmap (see the module notes).
HEATMAP_ORDER = "RHKDESTNQCGPAVILMFYW"
#: Colours of the cells that hold no effect.
WILDTYPE_COLOUR = "black"
MISSING_COLOUR = "#d9d9d9"
DEFAULT_POSITIONS_PER_ROW = 80
_CELL = 0.14  # inches per cell


@dataclass(frozen=True)
class MutationGrid:
    """Effects of single substitutions: ``values[a, j]`` is amino acid ``HEATMAP_ORDER[a]`` at ``positions[j]``
    (the assay's numbering), NaN where there is none (the wild type, or not measured)."""

    positions: tuple[int, ...]
    wildtype: str  # the wild-type letter at each position
    values: np.ndarray  # (20, len(positions)) float64

    @classmethod
    def from_effects(
        cls, positions: Sequence[int], wildtype: str, effects: Mapping[tuple[int, str], float]
    ) -> MutationGrid:
        """``effects[(position, mutant letter)]``; entries outside ``positions`` or the 20 amino acids are left
        out by the caller's choice of positions (they are not an error here)."""
        column = {position: j for j, position in enumerate(positions)}
        values = np.full((len(HEATMAP_ORDER), len(positions)), np.nan)
        for (position, letter), value in effects.items():
            if position in column and letter in HEATMAP_ORDER:
                values[HEATMAP_ORDER.index(letter), column[position]] = value
        return cls(tuple(positions), wildtype, values)

    def wildtype_mask(self) -> np.ndarray:
        """``(20, n)`` True at each column's wild-type residue (none for a non-standard letter such as X)."""
        mask = np.zeros(self.values.shape, dtype=bool)
        for j, letter in enumerate(self.wildtype):
            if letter in HEATMAP_ORDER:
                mask[HEATMAP_ORDER.index(letter), j] = True
        return mask

    def position_means(self) -> np.ndarray:
        """Each position's mean effect over its finite, non-wild-type cells (NaN where it has none)."""
        values = np.where(self.wildtype_mask(), np.nan, self.values)
        finite = np.isfinite(values)
        counts = finite.sum(axis=0)
        sums = np.where(finite, values, 0.0).sum(axis=0)
        return np.divide(sums, counts, out=np.full(counts.shape, np.nan), where=counts > 0)

    def limit(self) -> float:
        """The colour scale's half-range: the largest finite magnitude (1 when there is none)."""
        finite = np.abs(self.values[np.isfinite(self.values)])
        return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


@dataclass(frozen=True)
class HeatmapPanel:
    """One grid as drawn: its colour-bar label and the title of its first panel row."""

    grid: MutationGrid
    label: str
    title: str


def heatmap_figure(
    panels: Sequence[HeatmapPanel], title: str, positions_per_row: int = DEFAULT_POSITIONS_PER_ROW
) -> Figure:
    """Every panel's grid (predicted, and measured when given: the same positions) cut into rows of
    ``positions_per_row``; the rows of the panels alternate so that the same positions sit one above the other.

    Axes are labelled for readers of the figure (tests): ``"<panel>:heatmap:<row>"`` and ``"<panel>:mean:<row>"``.
    """
    if positions_per_row < 1:
        raise ValueError(f"positions_per_row must be positive, got {positions_per_row}")
    n = len(panels[0].grid.positions)
    starts = list(range(0, n, positions_per_row))
    width = min(n, positions_per_row)
    plt = pyplot()
    figure = plt.figure(
        figsize=(2.2 + _CELL * width, len(starts) * len(panels) * (_CELL * 22 + 1.0) + 0.6), layout="constrained"
    )
    ratios = [len(HEATMAP_ORDER), 1.4] * (len(starts) * len(panels))
    grid_spec = figure.add_gridspec(len(ratios), 1, height_ratios=ratios)
    for row, start in enumerate(starts):
        for p, panel in enumerate(panels):
            at = 2 * (row * len(panels) + p)
            heat, mean = figure.add_subplot(grid_spec[at]), figure.add_subplot(grid_spec[at + 1])
            _draw_row(heat, mean, panel, slice(start, start + positions_per_row), width)
            heat.set_label(f"{p}:heatmap:{row}")
            mean.set_label(f"{p}:mean:{row}")
            if row == 0:
                heat.set_title(panel.title, fontsize=10, pad=16)
    figure.suptitle(title, fontsize=12)
    return figure


def _draw_row(heat: Any, mean: Any, panel: HeatmapPanel, columns: slice, width: int) -> None:
    """One panel row: the heatmap with the wild type marked, the mean strip under it, one colour bar for both."""
    plt = pyplot()
    grid = panel.grid
    limit = grid.limit()
    colours = plt.get_cmap("RdBu").with_extremes(bad=MISSING_COLOUR)
    values = grid.values[:, columns]
    wildtype = grid.wildtype_mask()[:, columns]
    options: dict[str, Any] = {"cmap": colours, "vmin": -limit, "vmax": limit, "aspect": "auto"}
    image = heat.imshow(np.ma.masked_invalid(values), interpolation="nearest", **options)
    overlay = np.zeros((*values.shape, 4))
    overlay[wildtype] = (0.0, 0.0, 0.0, 1.0)
    heat.imshow(overlay, interpolation="nearest", aspect="auto")
    means = grid.position_means()[columns][None, :]
    mean.imshow(np.ma.masked_invalid(means), interpolation="nearest", **options)
    positions, letters = grid.positions[columns], grid.wildtype[columns]
    for axis in (heat, mean):
        axis.set_xlim(-0.5, width - 0.5)
    heat.set_yticks(range(len(HEATMAP_ORDER)), list(HEATMAP_ORDER), fontsize=6)
    heat.set_xticks(range(len(letters)), list(letters), fontsize=5)
    heat.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False, length=0)
    mean.set_yticks([0], ["mean"], fontsize=6)
    ticks = [j for j, position in enumerate(positions) if position % 10 == 0]
    mean.set_xticks(ticks, [str(positions[j]) for j in ticks], fontsize=7)
    colour_bar = heat.figure.colorbar(image, ax=[heat, mean], fraction=0.02, pad=0.01)
    colour_bar.set_label(panel.label, fontsize=7)
    colour_bar.ax.tick_params(labelsize=6)
