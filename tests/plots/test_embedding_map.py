"""plot-embeddings: the map of an embed file, its colourings, legend, subsample and bad labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from protconv.cli import main
from protconv.inference import embed
from protconv.inference.embedding_map import plot_embeddings, read_embedding_sample
from protconv.plots.embedding_map import Colouring, embedding_figure
from protconv.plots.projection import principal_components, project
from tests.inference.conftest import FASTA
from tests.plots.images import assert_not_blank, read_png


@pytest.fixture
def embeddings(tmp_path, conv_folder):
    return embed(conv_folder, FASTA, tmp_path / "e.h5", progress=False).output


def record_ids(path) -> list[str]:
    return read_embedding_sample(path, None, 100, 0).ids


def write_labels(path, ids, values, column="family"):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", column])
        writer.writerows(zip(ids, values, strict=True))
    return path


def test_pca_axes_explain_the_variance() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 8)) * [10, 3, 1, 1, 1, 1, 1, 1]
    projection = principal_components(points)
    total = ((points - points.mean(0)) ** 2).sum()
    assert projection.explained[0] == pytest.approx((projection.coordinates[:, 0] ** 2).sum() / total)
    assert projection.explained[0] > projection.explained[1] and "% of variance" in projection.axis_labels[0]


def test_categorical_map_legend_top_classes_other_and_unlabelled(tmp_path, embeddings) -> None:
    ids = record_ids(embeddings)
    labels = write_labels(tmp_path / "l.csv", ids[:-1], ["a"] * 5 + ["b"] * 4 + ["c", "d", "e", "f", "g"])
    result = plot_embeddings(
        embeddings, tmp_path / "m.png", labels=labels, color_by="family", top_classes=2,
        coordinates=tmp_path / "c.csv",
    )  # fmt: skip
    assert result.points == 15 and result.labelled == 14
    pixels = read_png(tmp_path / "m.png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert_not_blank(pixels)
    with open(tmp_path / "c.csv", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [r["id"] for r in written] == ids and written[-1]["family"] == ""
    figure = embedding_figure(
        project(read_embedding_sample(embeddings, None, 100, 0).vectors),
        Colouring("family", classes=[r["family"] or None for r in written]),
        "t",
        2,
    )
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["a (5)", "b (4)", "5 other classes (5)", "no label (1)"]
    drawn = np.concatenate([c.get_offsets() for c in figure.axes[0].collections])
    assert sorted(map(tuple, drawn)) == sorted((float(r["x"]), float(r["y"])) for r in written)


def test_numeric_colour_bar_and_length_without_labels(tmp_path, embeddings) -> None:
    ids = record_ids(embeddings)
    labels = write_labels(tmp_path / "l.csv", ids, [str(i / 10) for i in range(15)], "stability")
    assert plot_embeddings(embeddings, tmp_path / "n.png", labels=labels, color_by="stability").labelled == 15
    result = plot_embeddings(embeddings, tmp_path / "len.svg", color_by="length", coordinates=tmp_path / "c.csv")
    assert result.labelled == 15 and (tmp_path / "len.svg").read_text().startswith("<?xml")


def test_seeded_subsample(tmp_path, embeddings) -> None:
    first = read_embedding_sample(embeddings, None, 5, seed=1)
    assert len(first.ids) == 5 and first.ids == read_embedding_sample(embeddings, None, 5, seed=1).ids
    assert first.vectors.shape == (5, 32) and first.total == 15


@pytest.mark.parametrize(
    ("values", "extra", "message"),
    [
        (None, [], r"none of its 3 ids .* matches one of the 15 records"),
        (["1.5"] * 10 + ["2.x"] + ["3"] * 4, [], r"l\.csv:12: --color_by column 'family' looks numeric .* '2\.x'"),
        (["a"] * 15, ["--layer", "7"], r"no layer '7'; the file holds layers last"),
    ],
)
def test_bad_labels_are_one_line(tmp_path, capsys, embeddings, values, extra, message) -> None:
    import re

    ids = record_ids(embeddings)
    capsys.readouterr()  # the fixtures' progress bars
    if values is None:
        labels = write_labels(tmp_path / "l.csv", ["x", "y", "z"], ["a", "b", "c"])
    else:
        labels = write_labels(tmp_path / "l.csv", ids, values)
    code = main(
        [
            "plot-embeddings",
            str(embeddings),
            str(tmp_path / "m.png"),
            "--labels",
            str(labels),
            "--color_by",
            "family",
            *extra,
        ]
    )
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1 and re.search(message, error), error
    assert not (tmp_path / "m.png").exists()


def test_categorical_flag_and_missing_extra(tmp_path, embeddings) -> None:
    ids = record_ids(embeddings)
    labels = write_labels(tmp_path / "l.csv", ids, [str(i % 3) for i in range(15)])
    figure_path = tmp_path / "m.png"
    plot_embeddings(embeddings, figure_path, labels=labels, color_by="family", categorical=True)
    assert figure_path.is_file()
    try:
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="scikit-learn"):
            plot_embeddings(embeddings, figure_path, method="tsne")
