"""2-D projections of embedding vectors for a map: PCA (numpy's SVD, always there), UMAP (``umap-learn``, the
``protconv[umap]`` extra) and t-SNE (scikit-learn, which protconv does not depend on: used when installed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

#: The projections ``plot-embeddings --method`` offers.
ProjectionMethod = Literal["pca", "umap", "tsne"]
PROJECTIONS: tuple[ProjectionMethod, ...] = get_args(ProjectionMethod)


@dataclass(frozen=True)
class Projection:
    coordinates: np.ndarray  # (points, 2)
    axis_labels: tuple[str, str]
    explained: tuple[float, float] | None = None  # PCA: the fraction of variance on each axis


def project(vectors: np.ndarray, method: ProjectionMethod = "pca", seed: int = 0) -> Projection:
    """``(points, hidden)`` -> 2-D coordinates; every method is seeded (PCA needs no seed)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) < 3:
        raise ValueError(f"a map needs at least 3 embedded records, got {len(vectors)}")
    if method == "pca":
        return principal_components(vectors)
    if method == "umap":
        return _umap(vectors, seed)
    if method == "tsne":
        return _tsne(vectors, seed)
    raise ValueError(f"method must be one of {', '.join(PROJECTIONS)}, got {method!r}")


def principal_components(vectors: np.ndarray) -> Projection:
    """The first two principal components (signs fixed: each axis's largest loading is positive, so the same
    data always gives the same picture), with their fractions of the total variance."""
    centred = vectors - vectors.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:2] * np.sign(axes[:2][np.arange(2), np.abs(axes[:2]).argmax(axis=1)])[:, None]
    coordinates = centred @ axes.T
    total = float((singular**2).sum())
    explained = tuple(float(s**2 / total) if total > 0 else 0.0 for s in singular[:2])
    labels = tuple(f"PC{i + 1} ({fraction:.1%} of variance)" for i, fraction in enumerate(explained))
    return Projection(coordinates, (labels[0], labels[1]), (explained[0], explained[1]))


def _umap(vectors: np.ndarray, seed: int) -> Projection:
    try:
        import umap
    except ImportError:
        raise ImportError("--method umap needs umap-learn: pip install 'protconv[umap]'") from None
    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(vectors) - 1))
    return Projection(np.asarray(reducer.fit_transform(vectors)), ("UMAP 1", "UMAP 2"))


def _tsne(vectors: np.ndarray, seed: int) -> Projection:
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ImportError(
            "--method tsne needs scikit-learn, which protconv does not depend on: pip install scikit-learn "
            "(or use --method pca, or umap with protconv[umap])"
        ) from None
    tsne = TSNE(n_components=2, random_state=seed, perplexity=min(30.0, (len(vectors) - 1) / 3), init="pca")
    return Projection(np.asarray(tsne.fit_transform(vectors)), ("t-SNE 1", "t-SNE 2"))
