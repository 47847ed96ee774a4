"""scan: every single substitution, scored through score's code, with its CSV, costs, heatmap and bad inputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from protconv.cli import main
from protconv.inference import InferenceInputError
from protconv.inference.scan import AMINO_ACIDS, saturation_scan, scan_panels
from protconv.inference.score import score
from protconv.plots.heatmap import HEATMAP_ORDER
from tests.plots.images import assert_not_blank, read_png

from .conftest import write_fasta

WILDTYPE = "MKTAYIAKQRQISFVKSHFS"


def rows(path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_scan_writes_19_per_position_and_equals_score(tmp_path, conv_folder) -> None:
    result = saturation_scan(conv_folder, tmp_path / "scan.csv", sequence=WILDTYPE, offset=5, progress=False)
    table = rows(tmp_path / "scan.csv")
    assert table[0] == ["mutant", "masked_marginal"] and len(table) == 1 + 19 * len(WILDTYPE)
    assert (
        table[1][0] == "M5A"
        and table[19][0] == "M5Y"
        and table[20][0] == "K6A"
        and all(r[0][0] != r[0][-1] for r in table[1:])
    )
    assert result.forwards == len(WILDTYPE)  # one masked forward per position
    variants = tmp_path / "variants.csv"
    variants.write_text("mutant\n" + "\n".join(r[0] for r in table[1:]) + "\n")
    scored = score(conv_folder, variants, tmp_path / "scored.csv", sequence=WILDTYPE, offset=5, progress=False)
    assert np.allclose([float(r[1]) for r in table[1:]], scored.scores, atol=1e-6)


def test_wildtype_marginal_is_one_forward_and_positions_restrict(tmp_path, conv_folder) -> None:
    result = saturation_scan(
        conv_folder, tmp_path / "s.csv", sequence=WILDTYPE, method="wildtype-marginal", positions="7-9", offset=5,
        progress=False,
    )  # fmt: skip
    assert result.forwards == 1 and len(result.scores) == 57
    assert [v.name for v in result.variants[:2]] == ["T7A", "T7C"] and result.variants[-1].name == "Y9W"


def test_heatmap_draws_the_csv_and_the_measured_panel(tmp_path, conv_folder) -> None:
    measured = tmp_path / "measured.csv"
    measured.write_text("mutant,fitness\nK6A,0.5\nT7C,-1.0\nK6A:T7C,3\nA8R,\nI10W,2.0\n")
    fasta = write_fasta(tmp_path / "wt.fasta", [("wt", WILDTYPE)])
    result = saturation_scan(
        conv_folder, tmp_path / "s.csv", wildtype=fasta, offset=5, plot=tmp_path / "h.png", measured=measured,
        score_column="fitness", progress=False,
    )  # fmt: skip
    pixels = read_png(result.plot)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert_not_blank(pixels)
    predicted, truth = scan_panels(result, WILDTYPE, range(len(WILDTYPE)), 5, _measured(result, measured))
    written = {r[0]: float(r[1]) for r in rows(tmp_path / "s.csv")[1:]}
    for name, value in written.items():
        row, column = HEATMAP_ORDER.index(name[-1]), int(name[1:-1]) - 5
        assert predicted.grid.values[row, column] == value
    assert np.isnan(predicted.grid.values[predicted.grid.wildtype_mask()]).all()
    assert result.spearman_rows == 3 and "Spearman" in truth.title
    assert truth.grid.values[HEATMAP_ORDER.index("W"), 5] == 2.0
    expected = np.corrcoef(np.argsort(np.argsort([written["K6A"], written["T7C"], written["I10W"]])), [1, 0, 2])[0, 1]
    assert result.spearman == pytest.approx(expected)


def _measured(result, path):
    from protconv.inference.scan import read_measured

    return read_measured(path, "fitness", "mutant", WILDTYPE, 5, range(len(WILDTYPE)))


def test_non_standard_wild_type_letter_gets_20(tmp_path, conv_folder) -> None:
    result = saturation_scan(conv_folder, tmp_path / "s.csv", sequence="MKXA", positions="3", progress=False)
    assert [v.name for v in result.variants] == [f"X3{a}" for a in AMINO_ACIDS]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--wildtype", "{two}"], r"2 FASTA records \('a', 'b'\).*one record"),
        (["--sequence", WILDTYPE, "--positions", "15-40", "--offset", "5"], r"outside the wild type.*5\.\.24"),
        (["--sequence", WILDTYPE, "--positions", "x"], "range like 20-80"),
        (["--sequence", WILDTYPE, "--plot", "h.jpg"], r"must end in \.png"),
        (["--sequence", WILDTYPE, "--score_column", "f"], "go together"),
    ],
)
def test_bad_input_is_one_line_before_the_model(tmp_path, capsys, arguments, message) -> None:
    two = write_fasta(tmp_path / "two.fasta", [("a", WILDTYPE), ("b", WILDTYPE)])
    arguments = [a.replace("{two}", str(two)).replace("h.jpg", str(tmp_path / "h.jpg")) for a in arguments]
    code = main(["scan", str(tmp_path / "no-such-model"), str(tmp_path / "out.csv"), *arguments])
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1
    import re

    assert re.search(message, error), error
    with pytest.raises(InferenceInputError):
        saturation_scan(tmp_path / "m", tmp_path / "o.csv", sequence=WILDTYPE, positions="0-3")


def test_the_output_may_not_be_an_input_and_is_locked(tmp_path, conv_folder) -> None:
    one = write_fasta(tmp_path / "one.fasta", [("wt", WILDTYPE)])
    before = one.read_bytes()
    with pytest.raises(InferenceInputError, match="would overwrite the input"):
        saturation_scan(conv_folder, one, wildtype=one, progress=False)
    assert one.read_bytes() == before
    from protconv.file_guards import OutputFileInUseError, OutputFileLock

    with OutputFileLock(tmp_path / "scan.csv"), pytest.raises(OutputFileInUseError):
        saturation_scan(conv_folder, tmp_path / "scan.csv", sequence=WILDTYPE, progress=False)
