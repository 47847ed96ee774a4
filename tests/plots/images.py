"""Reading back rendered pictures: size, blankness, the colour at a data point."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_png(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)


def assert_not_blank(pixels: np.ndarray) -> None:
    assert pixels[..., :3].std() > 0.05, "the image is (nearly) one colour"


def rendered(figure) -> np.ndarray:
    """The figure's RGBA pixels as drawn by Agg (row 0 at the top)."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())


def pixel_at(figure, pixels: np.ndarray, axis, x: float, y: float) -> np.ndarray:
    """The RGB of data point (x, y) of ``axis``."""
    column, row = axis.transData.transform((x, y))
    return pixels[round(float(pixels.shape[0] - row)), round(float(column)), :3]
