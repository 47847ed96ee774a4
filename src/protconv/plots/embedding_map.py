"""A 2-D map of embeddings coloured by a label: a legend of the most frequent classes (the others grey) for a
categorical label, a colour bar for a numeric one; points without a label are drawn light grey, underneath."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .figures import pyplot
from .projection import Projection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNLABELLED_COLOUR = "#d0d0d0"
OTHER_COLOUR = "#8c8c8c"
DEFAULT_TOP_CLASSES = 10


@dataclass(frozen=True)
class Colouring:
    """What colours each point: ``classes`` (a name, or None for no label) or ``values`` (NaN for no label)."""

    name: str
    classes: Sequence[str | None] | None = None
    values: np.ndarray | None = None


def embedding_figure(
    projection: Projection, colouring: Colouring | None, title: str, top_classes: int = DEFAULT_TOP_CLASSES
) -> Figure:
    """The map; its scatter collections are labelled with their legend text (tests read them back)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    points = projection.coordinates
    size = float(np.clip(3000 / max(len(points), 1), 4, 40))
    if colouring is None:
        axis.scatter(points[:, 0], points[:, 1], s=size, color="#3b75af", linewidths=0)
    elif colouring.values is not None:
        _numeric(figure, axis, points, colouring, size)
    else:
        _categorical(axis, points, colouring, size, top_classes)
    axis.set(xlabel=projection.axis_labels[0], ylabel=projection.axis_labels[1], title=title)
    axis.title.set_fontsize(10)
    return figure


def _numeric(figure: Any, axis: Any, points: np.ndarray, colouring: Colouring, size: float) -> None:
    values = np.asarray(colouring.values, dtype=np.float64)
    known = np.isfinite(values)
    if (~known).any():
        axis.scatter(
            *points[~known].T, s=size, color=UNLABELLED_COLOUR, linewidths=0, label=f"no label ({(~known).sum()})"
        )
    drawn = axis.scatter(*points[known].T, s=size, c=values[known], cmap="viridis", linewidths=0, label=colouring.name)
    figure.colorbar(drawn, ax=axis).set_label(colouring.name)
    if (~known).any():
        axis.legend(loc="best", fontsize=7, markerscale=1.5)


def _categorical(axis: Any, points: np.ndarray, colouring: Colouring, size: float, top_classes: int) -> None:
    """The ``top_classes`` most frequent classes (ties: by name) in colour, in that order in the legend."""
    classes = list(colouring.classes or ())
    counts = Counter(c for c in classes if c is not None)
    top = [name for name, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top_classes]]
    palette = pyplot().get_cmap("tab10" if len(top) <= 10 else "tab20")
    names = np.array([c if c is not None else "" for c in classes], dtype=object)
    labelled = np.array([c is not None for c in classes])
    unlabelled = ~labelled
    if unlabelled.any():
        axis.scatter(
            *points[unlabelled].T, s=size, color=UNLABELLED_COLOUR, linewidths=0, label=f"no label ({unlabelled.sum()})"
        )
    rest = labelled & ~np.isin(names, top)
    if rest.any():
        others = len(counts) - len(top)
        axis.scatter(
            *points[rest].T, s=size, color=OTHER_COLOUR, linewidths=0, label=f"{others} other classes ({rest.sum()})"
        )
    for index, name in enumerate(top):
        chosen = names == name
        axis.scatter(*points[chosen].T, s=size, color=palette(index), linewidths=0, label=f"{name} ({chosen.sum()})")
    handles, labels = axis.get_legend_handles_labels()
    first = len(handles) - len(top)  # drawn first (underneath), listed last: other classes, then no label
    order = [*range(first, len(handles)), *reversed(range(first))]
    axis.legend(
        [handles[i] for i in order], [labels[i] for i in order], title=colouring.name, fontsize=7,
        title_fontsize=8, markerscale=1.5, loc="center left", bbox_to_anchor=(1.01, 0.5),
    )  # fmt: skip
