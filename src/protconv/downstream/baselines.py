"""Supervised baselines trained from scratch on exactly the same splits and metrics as fine-tuned models.

"Is transfer learning necessary for protein landscape prediction?" (Shanehsazzadeh, Belanger, Dohan 2020)
showed that a linear model on one-hot features and a small CNN are hard to beat; a pretrained model's number
means little without them beside it.

- ``linear``: ridge regression (regression) or L2 logistic regression (classification) on flattened one-hot
  sequences; per-residue tasks use a one-hot window around each residue. The L2 strength is chosen on the
  validation split.
- ``cnn``: 1-3 Conv1d layers with ReLU over one-hot residues, masked max or mean pooling, a dense head
  (per-residue tasks: no pooling); the epoch with the best validation score is kept.

Both show a progress bar (one step per L2 strength fitted, per CNN batch) on an interactive terminal; not when
stderr is a file or pipe, nor with ``--disable_tqdm`` (the option's name in ``finetune`` and ``pretrain``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..data.task_files import LabelledSequences
from ..data.tasks.vocabulary import Split, TaskType
from ..metrics import classification_metrics, regression_metrics, token_metrics
from ..modeling.vocabulary import IGNORE_INDEX, RESIDUE_CHARACTERS
from ..progress import progress_bar

_RESIDUE_INDEX = {char: index for index, char in enumerate(RESIDUE_CHARACTERS)}
N_RESIDUES = len(RESIDUE_CHARACTERS)

#: ``--cnn_pooling`` values: masked max or mean over residues.
CnnPooling = Literal["max", "mean"]

#: The headline score of each task type (used to pick hyper-parameters on the validation split).
PRIMARY_METRIC: dict[TaskType, str] = {
    "regression": "spearman",
    "classification": "accuracy",
    "token-classification": "accuracy",
}


#: A task's data by split, as ``load_task_splits`` returns it (valid and test may be absent).
_Splits = Mapping[Split, LabelledSequences]

#: Called once per unit of work done (a fit, a batch): advances a progress bar.
Tick = Callable[[], object]


def _no_tick() -> None:
    return None


def _bar(total: int, desc: str, enabled: bool) -> tqdm:
    """Drawn only on a terminal: a baseline's log file gets no bar lines."""
    return progress_bar(total, desc, enabled and sys.stderr.isatty())


@dataclass(frozen=True)
class BaselinePredictions:
    """One split's predictions beside their labels, item by item: per example, or per labelled residue for token
    tasks (each sequence's residues whose label is not -100, in order, as the frozen-embedding probes align them),
    so that ``evaluate`` can bootstrap a baseline's metric as it bootstraps a model's."""

    predicted: np.ndarray  # regression: values in the labels' units; classification: class ids (argmax)
    labels: np.ndarray


@dataclass
class BaselineResult:
    """One baseline's figures; ``predictions`` (per scored split) lets ``evaluate`` bootstrap its standard error.
    ``summary()`` is what ``protconv baseline --output_file`` writes (the predictions stay out of that file)."""

    metrics: dict[Split, dict[str, float]]
    chosen: str
    seconds: float
    predictions: dict[Split, BaselinePredictions]

    def summary(self) -> dict[str, object]:
        return {"metrics": self.metrics, "chosen": self.chosen, "seconds": self.seconds}


#: One fit's metrics and predictions on each scored split (valid, test).
_Scored = tuple[dict[Split, dict[str, float]], dict[Split, BaselinePredictions]]


def residue_codes(sequences: list[str], length: int) -> np.ndarray:
    """Residue indices, truncated/padded to ``length`` with -1 (padding has no one-hot bit)."""
    out = np.full((len(sequences), length), -1, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        indices = [_RESIDUE_INDEX[char] for char in sequence[:length]]
        out[row, : len(indices)] = indices
    return out


def one_hot_flat(sequences: list[str], length: int) -> np.ndarray:
    codes = residue_codes(sequences, length)
    features = np.zeros((len(sequences), length, N_RESIDUES), dtype=np.float32)
    rows, cols = np.nonzero(codes >= 0)
    features[rows, cols, codes[rows, cols]] = 1.0
    return features.reshape(len(sequences), -1)


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge with an unpenalised intercept; solves the smaller of the primal and dual systems."""
    x = x.astype(np.float64)
    x_mean, y_mean = x.mean(0), float(y.mean())
    xc, yc = x - x_mean, y - y_mean
    n, d = xc.shape
    if n >= d:
        weights = np.linalg.solve(xc.T @ xc + alpha * np.eye(d), xc.T @ yc)
    else:
        weights = xc.T @ np.linalg.solve(xc @ xc.T + alpha * np.eye(n), yc)
    return weights, y_mean - float(x_mean @ weights)


def _splits_features(splits: _Splits, length: int) -> dict[Split, np.ndarray]:
    return {name: one_hot_flat(data.sequences, length) for name, data in splits.items()}


def linear_baseline(
    task: TaskType,
    splits: _Splits,
    alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0),
    progress: bool = False,
) -> BaselineResult:
    """Ridge / logistic regression on one-hot features; L2 strength chosen on ``valid`` (else the middle one)."""
    start = time.perf_counter()
    candidates = alphas if "valid" in splits else (alphas[len(alphas) // 2],)
    with _bar(len(candidates), f"linear {task}", progress) as bar:
        if task == "regression":
            by_alpha = {alpha: _ridge_scores(splits, alpha, bar.update) for alpha in candidates}
        elif task == "token-classification":
            by_alpha = _windowed_logistic(splits, candidates, tick=bar.update)
        else:
            by_alpha = _logistic_scores(splits, candidates, tick=bar.update)
    metric = PRIMARY_METRIC[task]
    alpha = max(candidates, key=lambda a: by_alpha[a][0].get("valid", {}).get(metric, 0.0))
    warn_at_grid_edge(task, alpha, candidates)
    metrics, predictions = by_alpha[alpha]
    return BaselineResult(metrics, f"alpha={alpha:g}", time.perf_counter() - start, predictions)


def warn_at_grid_edge(task: TaskType, alpha: float, candidates: tuple[float, ...]) -> None:
    """The best L2 strength at an end of the grid may not be the best one: the user should know and widen it."""
    if len(candidates) > 1 and alpha in (min(candidates), max(candidates)):
        side = "smallest" if alpha == min(candidates) else "largest"
        logging.getLogger(__name__).warning(
            "linear %s baseline: the best alpha on valid, %g, is the %s of the grid %s; a value beyond it may "
            "score better (pass a wider grid as linear_baseline(alphas=...))",
            task, alpha, side, ", ".join(f"{a:g}" for a in candidates),
        )  # fmt: skip


def _ridge_scores(splits: _Splits, alpha: float, tick: Tick = _no_tick) -> _Scored:
    length = max(len(s) for s in splits["train"].sequences)
    features = _splits_features(splits, length)
    weights, bias = ridge_fit(features["train"], np.asarray(splits["train"].labels, dtype=np.float64), alpha)
    tick()
    predictions: dict[Split, BaselinePredictions] = {
        name: BaselinePredictions(x @ weights + bias, np.asarray(splits[name].labels))
        for name, x in features.items()
        if name != "train"
    }
    return {name: regression_metrics(p.predicted, p.labels) for name, p in predictions.items()}, predictions


def _sparse_one_hot(codes: np.ndarray) -> torch.Tensor:
    """Indices of the set bits of each row's one-hot encoding: position * N_RESIDUES + residue.

    Padding (-1) maps to the extra index ``codes.shape[1] * N_RESIDUES``, the padding row of the weight table.
    A row has at most ``codes.shape[1]`` set bits out of ``N_RESIDUES`` times as many features, so the linear
    model is an embedding-bag sum: ~N_RESIDUES times cheaper than a dense matmul on the flattened one-hot.
    """
    width = codes.shape[1]
    index = np.arange(width) * N_RESIDUES + codes
    return torch.from_numpy(np.where(codes >= 0, index, width * N_RESIDUES))


class _SparseSoftmax(nn.Module):
    """Multinomial logistic regression on one-hot features given as set-bit indices (``_sparse_one_hot``)."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(features + 1, classes))  # + the padding row, kept at zero
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        padding = self.weight.shape[0] - 1
        return F.embedding_bag(bits, self.weight, mode="sum", padding_idx=padding) + self.bias


Softmax = TypeVar("Softmax", _SparseSoftmax, torch.nn.Linear)


def fit_softmax(bits: torch.Tensor, y: torch.Tensor, model: Softmax, alpha: float, steps: int = 100) -> Softmax:
    """Full-batch L-BFGS on cross-entropy + (alpha / n) * ||W||^2, starting from ``model``'s weights (the one
    logistic fit of the one-hot baseline and of ``evaluate``'s frozen-embedding probes)."""
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(bits), y) + alpha / len(bits) * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def _logistic_path(
    train: tuple[torch.Tensor, torch.Tensor],
    evaluate: Mapping[Split, tuple[torch.Tensor, np.ndarray]],
    features: int,
    classes: int,
    alphas: tuple[float, ...],
    tick: Tick = _no_tick,
) -> dict[float, _Scored]:
    """Fit every L2 strength from strongest to weakest, each warm-started from the previous solution.

    Only classes present in train get a column (a class never seen cannot be learned; with 1,195 folds and a
    few thousand training proteins most are unseen); the others score -inf, so metrics see every class.
    """
    bits, labels = train
    seen = torch.unique(labels)
    compact = torch.searchsorted(seen, labels)
    model = _SparseSoftmax(features, len(seen))
    results: dict[float, _Scored] = {}
    for alpha in sorted(alphas, reverse=True):
        fit_softmax(bits, compact, model, alpha)
        tick()
        results[alpha] = ({}, {})
        with torch.no_grad():
            for name, (eval_bits, eval_labels) in evaluate.items():
                logits = np.full((len(eval_bits), classes), -np.inf, dtype=np.float32)
                logits[:, seen.numpy()] = model(eval_bits).numpy()
                results[alpha][0][name] = classification_metrics(logits, eval_labels)
                results[alpha][1][name] = BaselinePredictions(logits.argmax(-1), np.asarray(eval_labels))
    return results


def _logistic_scores(
    splits: _Splits,
    alphas: tuple[float, ...],
    length_quantile: float = 0.95,
    tick: Tick = _no_tick,
) -> dict[float, _Scored]:
    """Proteins cropped/padded to the ``length_quantile`` of train lengths: the long tail of a fold-classification
    set would otherwise multiply the feature count for a handful of proteins."""
    length = int(np.ceil(np.quantile([len(s) for s in splits["train"].sequences], length_quantile)))
    bits = {name: _sparse_one_hot(residue_codes(data.sequences, length)) for name, data in splits.items()}
    classes = 1 + max(max(data.labels) for data in splits.values())
    evaluate: dict[Split, tuple[torch.Tensor, np.ndarray]] = {
        name: (bits[name], np.asarray(data.labels)) for name, data in splits.items() if name != "train"
    }
    train = (bits["train"], torch.tensor(splits["train"].labels))
    return _logistic_path(train, evaluate, length * N_RESIDUES, classes, alphas, tick)


def _windows(data: LabelledSequences, half_width: int) -> tuple[torch.Tensor, np.ndarray]:
    """Set-bit indices of the one-hot window of 2*half_width+1 residues around every labelled residue."""
    rows, labels = [], []
    for sequence, residue_labels in zip(data.sequences, data.labels, strict=True):
        codes = np.pad(residue_codes([sequence], len(sequence))[0], half_width, constant_values=-1)
        for position, label in enumerate(residue_labels):
            if label != IGNORE_INDEX:
                rows.append(codes[position : position + 2 * half_width + 1])
                labels.append(label)
    return _sparse_one_hot(np.stack(rows)), np.asarray(labels)


def _windowed_logistic(
    splits: _Splits, alphas: tuple[float, ...], half_width: int = 7, tick: Tick = _no_tick
) -> dict[float, _Scored]:
    windows = {name: _windows(data, half_width) for name, data in splits.items()}
    classes = 1 + max(int(labels.max()) for _, labels in windows.values())
    evaluate: dict[Split, tuple[torch.Tensor, np.ndarray]] = {
        name: window for name, window in windows.items() if name != "train"
    }
    bits, labels = windows["train"]
    features = (2 * half_width + 1) * N_RESIDUES
    return _logistic_path((bits, torch.from_numpy(labels)), evaluate, features, classes, alphas, tick)


class SmallCNN(nn.Module):
    """One-hot residues -> ``layers`` x (Conv1d, ReLU) -> masked pooling (or none, per residue) -> dense head."""

    def __init__(
        self, outputs: int, channels: int = 128, kernel_size: int = 5, layers: int = 2, pooling: CnnPooling = "max",
        per_residue: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(N_RESIDUES if i == 0 else channels, channels, kernel_size, padding=kernel_size // 2)
            for i in range(layers)
        )
        self.pooling, self.per_residue = pooling, per_residue
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, outputs))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        mask = (codes >= 0).unsqueeze(1).float()
        hidden = (F.one_hot(codes.clamp(min=0), N_RESIDUES).float().transpose(1, 2)) * mask
        for conv in self.convs:
            hidden = F.relu(conv(hidden)) * mask
        if self.per_residue:
            return self.head(hidden.transpose(1, 2))
        if self.pooling == "max":
            pooled = hidden.masked_fill(mask == 0, float("-inf")).amax(-1)
        else:
            pooled = hidden.sum(-1) / mask.sum(-1)
        return self.head(pooled)


def _cnn_batch(data: LabelledSequences, index: np.ndarray, task: TaskType) -> tuple[torch.Tensor, torch.Tensor]:
    sequences = [data.sequences[i] for i in index]
    length = max(map(len, sequences))
    codes = torch.from_numpy(residue_codes(sequences, length))
    if task == "token-classification":
        labels = torch.full((len(index), length), IGNORE_INDEX)
        for row, i in enumerate(index):
            labels[row, : len(data.labels[i])] = torch.tensor(data.labels[i])
    elif task == "regression":
        labels = torch.tensor([data.labels[i] for i in index], dtype=torch.float32)
    else:
        labels = torch.tensor([data.labels[i] for i in index])
    return codes, labels


def _cnn_loss(output: torch.Tensor, labels: torch.Tensor, task: TaskType) -> torch.Tensor:
    if task == "regression":
        return F.mse_loss(output.squeeze(-1), labels)
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def _cnn_outputs(
    model: SmallCNN, data: LabelledSequences, task: TaskType, scale: tuple[float, float], batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Outputs on ``data`` and their labels (per labelled residue for token tasks): logits, or for regression the
    predictions mapped back from z-scores with ``scale`` = (mean, std)."""
    model.eval()
    outputs, labels = [], []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            codes, y = _cnn_batch(data, np.arange(start, min(start + batch_size, len(data))), task)
            out = model(codes)
            if task == "token-classification":
                keep = y != IGNORE_INDEX
                out, y = out[keep], y[keep]
            outputs.append(out)
            labels.append(y)
    logits, truth = torch.cat(outputs).numpy(), torch.cat(labels).numpy()
    return (logits.ravel() * scale[1] + scale[0] if task == "regression" else logits), truth


def _cnn_metrics(task: TaskType, outputs: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(outputs, truth)
    return classification_metrics(outputs, truth) if task == "classification" else token_metrics(outputs, truth)


def _cnn_scored(model: SmallCNN, splits: _Splits, task: TaskType, scale: tuple[float, float]) -> _Scored:
    """Metrics and predictions on every split but train, each from one pass of the model."""
    metrics: dict[Split, dict[str, float]] = {}
    predictions: dict[Split, BaselinePredictions] = {}
    for name, data in splits.items():
        if name != "train":
            outputs, truth = _cnn_outputs(model, data, task, scale)
            metrics[name] = _cnn_metrics(task, outputs, truth)
            predictions[name] = BaselinePredictions(outputs if task == "regression" else outputs.argmax(-1), truth)
    return metrics, predictions


def cnn_baseline(
    task: TaskType, splits: _Splits, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
    layers: int = 2, channels: int = 128, pooling: CnnPooling = "max", seed: int = 0, progress: bool = False,
) -> BaselineResult:  # fmt: skip
    """Train the small CNN with Adam; regression targets are z-scored; keep the best validation epoch."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = splits["train"]
    outputs = 1 if task == "regression" else 1 + max(_max_label(data, task) for data in splits.values())
    model = SmallCNN(outputs, channels, layers=layers, pooling=pooling, per_residue=task == "token-classification")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    mean, std = (np.mean(train.labels), np.std(train.labels) or 1.0) if task == "regression" else (0.0, 1.0)
    scaled = LabelledSequences(train.sequences, [(y - mean) / std for y in train.labels] if task == "regression"
                               else train.labels)  # fmt: skip
    best_score, best_epoch = -np.inf, 0
    best_state: dict[str, torch.Tensor] | None = None
    batches = -(-len(train) // batch_size)
    with _bar(epochs * batches, f"cnn {task}", progress) as bar:
        for epoch in range(epochs):
            model.train()
            order = rng.permutation(len(train))
            for batch_start in range(0, len(train), batch_size):
                codes, labels = _cnn_batch(scaled, order[batch_start : batch_start + batch_size], task)
                optimizer.zero_grad()
                loss = _cnn_loss(model(codes), labels, task)
                loss.backward()
                optimizer.step()
                bar.update()
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f}", refresh=False)
            scored = _cnn_outputs(model, splits.get("valid", train), task, (mean, std))
            score = _cnn_metrics(task, *scored)[PRIMARY_METRIC[task]]
            if score > best_score:
                best_score, best_epoch = score, epoch + 1
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
    if best_state is None:  # no epoch, or no finite validation score: torch's own message, as before
        raise TypeError(f"Expected state_dict to be dict-like, got {type(best_state)}.")
    model.load_state_dict(best_state)
    metrics, predictions = _cnn_scored(model, splits, task, (mean, std))
    return BaselineResult(metrics, f"epoch={best_epoch}/{epochs}", time.perf_counter() - start, predictions)


def _max_label(data: LabelledSequences, task: TaskType) -> int:
    if task == "token-classification":
        return max(max(labels) for labels in data.labels)
    return max(data.labels)


@dataclass
class BaselineArguments:
    """Options of ``protconv baseline`` (the task and files come from ``TaskDataArguments``)."""

    baselines: str = field(default="linear,cnn", metadata={"help": "comma-separated: linear, cnn"})
    cnn_epochs: int = 10
    cnn_layers: int = 2
    cnn_channels: int = 128
    cnn_pooling: CnnPooling = field(default="max", metadata={"help": "max | mean"})
    seed: int = 0
    output_file: str | None = field(default=None, metadata={"help": "write the results as JSON here"})
    disable_tqdm: bool = field(
        default=False, metadata={"help": "no progress bars (they are drawn only when stderr is a terminal anyway)"}
    )


def run_baselines(task: TaskType, splits: _Splits, args: BaselineArguments) -> dict[str, BaselineResult]:
    results = {}
    for name in [b.strip() for b in args.baselines.split(",") if b.strip()]:
        if name == "linear":
            results[name] = linear_baseline(task, splits, progress=not args.disable_tqdm)
        elif name == "cnn":
            results[name] = cnn_baseline(
                task, splits, epochs=args.cnn_epochs, layers=args.cnn_layers, channels=args.cnn_channels,
                pooling=args.cnn_pooling, seed=args.seed, progress=not args.disable_tqdm,
            )  # fmt: skip
        else:
            raise ValueError(f"unknown baseline {name!r}; choose linear and/or cnn")
    return results
