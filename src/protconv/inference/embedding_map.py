"""``protconv plot-embeddings``: a 2-D map of the records of an ``embed`` HDF5 file, coloured by a label.

Records are read one at a time, and only those plotted (``max_points``, a seeded subsample): memory grows with
hidden size x points, never with the file. Records come in the order of the root ``ids`` (FASTA order) when the
file has them; a file with the stacked ``mean`` matrix (``embed --stack``) gives the points' vectors in one read.
The vector of a record is its ``mean`` (or ``cls``) row of ``layer``; a file written with ``per_residue`` only is
averaged over residues. Labels come from a CSV/TSV table with an id column (the FASTA record ids); ``color_by
length`` needs no table (the residue count ``embed`` stores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..plots.embedding_map import DEFAULT_TOP_CLASSES, Colouring
from ..plots.projection import ProjectionMethod
from .common import InferenceInputError
from .embed import FORMAT, IDS, LAST, STACK, _read_attribute, group_name
from .inputs import check_input_file, read_csv

_MISSING = frozenset({"", "nan", "na", "n/a", "none", "null"})
#: The colouring that needs no labels table: each record's residue count, stored by embed.
LENGTH = "length"


@dataclass(frozen=True)
class EmbeddingMapResult:
    output: Path
    points: int
    labelled: int
    axis_labels: tuple[str, str]


@dataclass(frozen=True)
class Records:
    ids: list[str]
    vectors: np.ndarray  # (points, hidden)
    lengths: list[int]
    layer: str
    pooling: str
    total: int  # records in the file


def read_embedding_sample(path: str | Path, layer: str | None, max_points: int, seed: int) -> Records:
    """The vectors of at most ``max_points`` records (a seeded subsample, kept in file order)."""
    path = check_input_file(path)
    with h5py.File(path, "r") as store:
        if _read_attribute(store.attrs.get("format", b"")) != FORMAT:
            raise InferenceInputError(f"{path}: not a protconv embeddings file (write one with protconv embed)")
        layers = list(_read_attribute(store.attrs["layers"]))
        chosen = layer or (LAST if LAST in layers else layers[-1])
        if chosen not in layers:
            raise InferenceInputError(f"{path}: no layer {chosen!r}; the file holds layers {', '.join(layers)}")
        include = list(_read_attribute(store.attrs["include"]))
        pooling = next((item for item in ("mean", "cls", "per_residue") if item in include), None)
        if pooling is None:
            raise InferenceInputError(f"{path}: no mean, cls or per_residue datasets to map")
        names = record_names(store)
        total = len(names)
        keep = np.arange(total)
        if max_points < total:
            keep = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
            names = [names[i] for i in keep]
        row = layers.index(chosen)
        stacked = _stacked_rows(store, total, keep, row) if pooling == "mean" else None
        ids, vectors, lengths = [], [], []
        for name in names:
            group = store[name]
            if stacked is None:
                data = group[pooling][row]
                vectors.append(data.mean(axis=0) if pooling == "per_residue" else data)
            ids.append(_read_attribute(group.attrs["id"]))
            lengths.append(int(group.attrs["length"]))
        found = stacked if stacked is not None else np.asarray(vectors)
        return Records(ids, found.astype(np.float64), lengths, chosen, pooling, total)


def record_names(store: h5py.File) -> list[str]:
    """The record groups of an ``embed`` file in file order: the root ``ids`` (FASTA order) when the run that
    wrote it finished, else the groups (HDF5's name order) without the root datasets."""
    if IDS in store:
        return [group_name(record_id) for record_id in store[IDS].asstr()[()].tolist()]
    return [name for name in store if isinstance(store[name], h5py.Group)]


def _stacked_rows(store: h5py.File, total: int, keep: np.ndarray, row: int) -> np.ndarray | None:
    """The ``mean`` rows of the records kept from the stacked matrix in one read (rows follow ``ids``), or None
    when the file has no stack of all its records."""
    matrix = store.get(STACK)
    if IDS not in store or not isinstance(matrix, h5py.Dataset) or matrix.shape[0] != total:
        return None
    rows = matrix[:, row] if len(keep) == total else matrix[keep, row]
    return np.asarray(rows)


def read_labels(path: str | Path, id_column: str | None, color_by: str) -> tuple[dict[str, str], dict[str, int]]:
    """``id -> raw label`` of the table's ``color_by`` column, and each id's line (repeated ids are an error)."""
    labels: dict[str, str] = {}
    lines: dict[str, int] = {}
    with read_csv(path) as (table, rows):
        id_index = table.column(id_column or "", "the record ids (--id_column)", ("id", "record", "name"))
        value_index = table.column(color_by, "the label to colour by (--color_by)")
        for row in rows:
            key = row.fields[id_index].strip()
            if key in lines:
                raise InferenceInputError(f"{table.path}:{row.line}: id {key!r} repeats the id of line {lines[key]}")
            labels[key], lines[key] = row.fields[value_index].strip(), row.line
    return labels, lines


def colouring(
    records: Records,
    labels_path: str | Path | None,
    color_by: str | None,
    id_column: str | None,
    categorical: bool,
) -> tuple[Colouring | None, int]:
    """The points' colouring and the number of labelled points; labels matching no record are an error."""
    if color_by is None:
        return None, 0
    if labels_path is None:
        if color_by != LENGTH:
            raise InferenceInputError(
                f"--color_by {color_by!r} needs --labels (a table of ids); only 'length' does not"
            )
        return Colouring(LENGTH, values=np.array(records.lengths, dtype=np.float64)), len(records.ids)
    labels, lines = read_labels(labels_path, id_column, color_by)
    matched = [labels.get(i) for i in records.ids]
    found = sum(value is not None for value in matched)
    if found == 0:
        shown = ", ".join(repr(i) for i in list(labels)[:3]) + (", ..." if len(labels) > 3 else "")
        raise InferenceInputError(
            f"{labels_path}: none of its {len(labels)} ids ({shown}) matches one of the {len(records.ids)} "
            f"records plotted (e.g. {records.ids[0]!r}); is --id_column right?"
        )
    values = [None if value is None or value.lower() in _MISSING else value for value in matched]
    if not categorical and _is_numeric(labels, lines, labels_path, color_by):
        numbers = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
        return Colouring(color_by, values=numbers), int(np.isfinite(numbers).sum())
    return Colouring(color_by, classes=values), sum(v is not None for v in values)


def _is_numeric(labels: dict[str, str], lines: dict[str, int], path: str | Path, column: str) -> bool:
    """All numbers: numeric. Mostly numbers: an error naming the first cell that is not one (a typo would turn
    a colour bar into hundreds of classes). Otherwise: categorical."""
    present = {key: value for key, value in labels.items() if value.lower() not in _MISSING}
    failed = [key for key, value in present.items() if not _number(value)]
    if not failed:
        return bool(present)
    if len(failed) * 2 < len(present):
        key = failed[0]
        raise InferenceInputError(
            f"{path}:{lines[key]}: --color_by column {column!r} looks numeric ({len(present) - len(failed)} of "
            f"{len(present)} values are numbers) but holds {labels[key]!r}; fix the value, leave it empty for no "
            "label, or pass --categorical to colour by classes"
        )
    return False


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def plot_embeddings(
    embeddings: str | Path,
    output: str | Path,
    *,
    labels: str | Path | None = None,
    color_by: str | None = None,
    id_column: str | None = None,
    layer: str | None = None,
    method: ProjectionMethod = "pca",
    max_points: int = 5000,
    seed: int = 0,
    categorical: bool = False,
    top_classes: int = DEFAULT_TOP_CLASSES,
    coordinates: str | Path | None = None,
) -> EmbeddingMapResult:
    """Draw the map to ``output`` (format by extension); ``coordinates``: also write the points drawn as CSV."""
    from ..plots.embedding_map import embedding_figure
    from ..plots.figures import check_image_path, save_figure
    from ..plots.projection import project

    check_image_path(output, "the map")
    if max_points < 3:
        raise InferenceInputError(f"max_points must be at least 3, got {max_points}")
    records = read_embedding_sample(embeddings, layer, max_points, seed)
    paint, labelled = colouring(records, labels, color_by, id_column, categorical)
    projection = project(records.vectors, method, seed)
    sample = f"{len(records.ids)} of {records.total}" if len(records.ids) < records.total else str(records.total)
    title = f"{Path(embeddings).name}: {sample} records, layer {records.layer} ({records.pooling}), {method}"
    figure = embedding_figure(projection, paint, title, top_classes)
    if coordinates is not None:
        _write_coordinates(coordinates, records.ids, projection.coordinates, paint)
    save_figure(figure, output)
    return EmbeddingMapResult(Path(output), len(records.ids), labelled, projection.axis_labels)


def _write_coordinates(path: str | Path, ids: list[str], points: np.ndarray, paint: Colouring | None) -> None:
    import csv

    from .inputs import atomic_text_output

    if paint is None:
        names = [""] * len(ids)
    elif paint.values is not None:
        names = ["" if math.isnan(v) else repr(float(v)) for v in paint.values]
    else:
        names = ["" if c is None else c for c in paint.classes or ()]
    with atomic_text_output(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "x", "y", paint.name if paint else "label"])
        for index, (record, (x, y)) in enumerate(zip(ids, points, strict=True)):
            writer.writerow([record, repr(float(x)), repr(float(y)), names[index]])
