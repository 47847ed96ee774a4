"""The heatmap: what it draws (values, mean strip, wild type in black, panel rows) and the file it writes."""

from __future__ import annotations

import numpy as np
import pytest

from protconv.plots.figures import save_figure
from protconv.plots.heatmap import HEATMAP_ORDER, HeatmapPanel, MutationGrid, heatmap_figure

from .images import assert_not_blank, pixel_at, read_png, rendered

WILDTYPE = "MKTAYIAKQRQISFVKSHFSRQLEE"


def grid(offset: int = 10) -> MutationGrid:
    rng = np.random.default_rng(0)
    positions = range(offset, offset + len(WILDTYPE))
    effects = {
        (p, a): float(rng.normal()) for p, w in zip(positions, WILDTYPE, strict=True) for a in HEATMAP_ORDER if a != w
    }
    return MutationGrid.from_effects(list(positions), WILDTYPE, effects)


def axes_named(figure, name: str):
    return [axis for axis in figure.axes if axis.get_label().endswith(name) or name in axis.get_label()]


def test_grid_holds_the_effects_and_the_wild_type_is_empty() -> None:
    g = grid()
    assert g.values.shape == (20, len(WILDTYPE))
    mask = g.wildtype_mask()
    assert mask.sum() == len(WILDTYPE) and np.isnan(g.values[mask]).all() and np.isfinite(g.values[~mask]).all()
    assert np.allclose(g.position_means(), np.nanmean(g.values, axis=0))


def test_panel_rows_draw_the_values_and_long_proteins_are_split() -> None:
    g = grid()
    figure = heatmap_figure([HeatmapPanel(g, "score", "predicted")], "model · method", positions_per_row=10)
    heatmaps = [a for a in figure.axes if ":heatmap:" in a.get_label()]
    assert len(heatmaps) == 3  # 25 positions in rows of 10
    drawn = np.concatenate([np.ma.filled(a.images[0].get_array(), np.nan) for a in heatmaps], axis=1)
    assert np.array_equal(drawn, g.values, equal_nan=True)
    means = np.concatenate(
        [np.ma.filled(a.images[0].get_array(), np.nan)[0] for a in figure.axes if ":mean:" in a.get_label()]
    )
    assert np.allclose(means, g.position_means())
    image = heatmaps[0].images[0]
    assert image.norm.vmin == -image.norm.vmax == -g.limit()  # centred at 0
    assert figure._suptitle.get_text() == "model · method"
    labels = [t.get_text() for t in figure.axes[1].get_xticklabels()]
    assert labels == ["10", "20"][: len(labels)] and labels  # ticks in the assay's numbering


def test_wild_type_cells_are_black_and_the_others_are_not() -> None:
    g = grid()
    figure = heatmap_figure([HeatmapPanel(g, "score", "predicted")], "t")
    pixels = rendered(figure)
    heat = next(a for a in figure.axes if ":heatmap:" in a.get_label())
    for column, letter in enumerate(WILDTYPE[:6]):
        row = HEATMAP_ORDER.index(letter)
        assert pixel_at(figure, pixels, heat, column, row).max() < 30
        other = (row + 1) % 20
        assert pixel_at(figure, pixels, heat, column, other).max() > 60


def test_measured_panel_and_file(tmp_path) -> None:
    g = grid()
    measured = MutationGrid.from_effects(g.positions, g.wildtype, {(10, "A"): 1.0, (12, "W"): -2.0})
    figure = heatmap_figure([HeatmapPanel(g, "score", "p"), HeatmapPanel(measured, "fitness", "measured ρ")], "t")
    assert len([a for a in figure.axes if a.get_label().startswith("1:heatmap")]) == 1
    path = save_figure(figure, tmp_path / "h.png")
    pixels = read_png(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert_not_blank(pixels)


def test_bad_image_extension_is_refused(tmp_path) -> None:
    from protconv.plots.figures import check_image_path

    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf"):
        check_image_path(tmp_path / "h.jpg")
