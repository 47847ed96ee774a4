"""Frozen-embedding probes, the fast evaluation of the CARP paper: closed-form ridge on pooled embeddings
(regression), L2 logistic regression by L-BFGS on pooled embeddings (classification) or on each residue's
embedding (per-residue tasks). The L2 strength is chosen on the validation split when there is one."""

from __future__ import annotations

import numpy as np
import torch

from ..downstream.baselines import fit_softmax, ridge_fit
from ..metrics import spearman

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    return [(x - mean) / std for x in (train, *others)]


def ridge_probe(
    train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray] | None, test: np.ndarray
) -> np.ndarray:
    """Test predictions of the ridge whose alpha gives the best validation Spearman (else alpha 1)."""
    (x, y), candidates = train, ALPHAS if valid is not None else (1.0,)
    x, vx, tx = _standardise(x, valid[0] if valid is not None else x, test)
    fits = {alpha: ridge_fit(x, y, alpha) for alpha in candidates}
    if valid is not None:
        best = max(candidates, key=lambda a: np.nan_to_num(spearman(vx @ fits[a][0] + fits[a][1], valid[1]), nan=-1))
    else:
        best = candidates[0]
    weights, bias = fits[best]
    return tx @ weights + bias


def _logistic(x: torch.Tensor, y: torch.Tensor, classes: int, alpha: float, steps: int = 100) -> torch.nn.Linear:
    return fit_softmax(x, y, torch.nn.Linear(x.shape[1], classes), alpha, steps)


def logistic_probe(
    train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray] | None, test: np.ndarray
) -> np.ndarray:
    """Test class predictions of the logistic regression with the best validation accuracy (else alpha 1)."""
    (x, y), candidates = train, ALPHAS if valid is not None else (1.0,)
    scaled = _standardise(x, valid[0] if valid is not None else x, test)
    features, vx, tx = (torch.from_numpy(a.astype(np.float32)) for a in scaled)
    classes = int(max(y.max(), valid[1].max() if valid is not None else 0)) + 1
    labels = torch.from_numpy(y.astype(np.int64))
    best, best_score = None, -1.0
    for alpha in candidates:
        model = _logistic(features, labels, classes, alpha)
        with torch.no_grad():
            score = float((model(vx).argmax(-1).numpy() == valid[1]).mean()) if valid is not None else 0.0
        if best is None or score > best_score:
            best, best_score = model, score
    assert best is not None
    with torch.no_grad():
        return best(tx).argmax(-1).numpy()
