"""The one way protconv starts and saves a figure: matplotlib's Agg backend (no display, the same pixels on every
machine), the file format chosen by the output's extension."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Output formats by extension (what matplotlib writes without extra libraries).
FORMATS = (".png", ".svg", ".pdf")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, imported on first use (``import protconv`` stays light)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_image_path(path: str | Path, option: str = "the image") -> Path:
    """Refuse an extension matplotlib would not write (or write as something else) before any work is done."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: {option} must end in {', '.join(FORMATS)} (the format follows the extension)")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name for {option}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder for {option} {path.name}")
    return path


def save_figure(figure: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``figure`` to ``path`` (format from the extension) and free it."""
    path = check_image_path(path)
    try:
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
    finally:
        pyplot().close(figure)
    return path
