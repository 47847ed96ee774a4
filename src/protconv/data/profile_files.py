"""Ready-made profiles as training targets: HMMER3 ``.hmm`` and HH-suite ``.hhm`` readers.

Both formats hold one 20-way match-state emission distribution per model position, in A..Y order (the
``HMM`` line of each file is checked, and the columns reordered if ever needed). They differ in encoding:

- HMMER3 (``HMMER3/a`` to ``/f``): ``-ln(p)`` with five decimals; ``*`` is p = 0. Emissions include HMMER's
  Dirichlet-mixture prior, so they are smooth. The sequence is the model's consensus (CONS annotation).
- HH-suite ``.hhm``: ``-1000 * log2(p)`` rounded to an integer; ``*`` is p = 0. hhmake writes the weighted
  amino-acid *frequencies without pseudocounts* (HH-suite adds them when it reads the file), so many entries
  are zero. The sequence is the query's residue letter at each match state.

Rounding leaves rows summing to 1 only approximately (within ~0.1% for .hhm); rows are renormalised unless
``normalize=False``. Files may hold several models back to back: the ``*_profiles`` readers return them all,
the singular readers insist on exactly one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..modeling.vocabulary import EXTENDED_AMINO_ACIDS, STANDARD_AMINO_ACIDS
from .fasta import DataFileError, open_text
from .profiles import ProfileExample

_ORDER = list(STANDARD_AMINO_ACIDS)
_RESIDUES = frozenset(STANDARD_AMINO_ACIDS + EXTENDED_AMINO_ACIDS)


class ProfileFormatError(DataFileError):
    """Malformed profile file. The message starts with ``file:line`` (1-based).

    Bytes that are not UTF-8 and truncated gzip input raise it too (see :func:`protconv.data.fasta.open_text`).
    """


@dataclass
class ProfileFileRecord:
    """One model of a profile file: ``sequence[i]`` is the residue whose target is ``probabilities[i]`` (L, 20).

    ``neff`` is the file's own diversity figure when it has one (HMMER ``EFFN``, HH-suite ``NEFF``).
    """

    name: str
    sequence: str
    probabilities: np.ndarray
    neff: float | None = None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open_text(path, ProfileFormatError) as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.rstrip("\r\n")


def _column_order(path: Path, number: int, line: str) -> np.ndarray:
    """Indices putting the file's emission columns (named on its ``HMM`` line) into A..Y order."""
    letters = line.split()[1:21]
    if sorted(letters) != sorted(_ORDER):
        raise ProfileFormatError(path, number, f"HMM line must name the 20 amino acids, got {' '.join(letters)}")
    return np.array([letters.index(letter) for letter in _ORDER])


def _integer(path: Path, number: int, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ProfileFormatError(path, number, f"LENG must be an integer, got {text!r}") from None


def _number(path: Path, number: int, text: str, tag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProfileFormatError(path, number, f"{tag} must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value):
        raise ProfileFormatError(path, number, f"{tag} must be a finite number, got {text.strip()!r}")
    return value


def _decode(path: Path, number: int, fields: list[str], scale: float) -> np.ndarray:
    """Probabilities from 20 score fields: p = exp(-value * scale), '*' = 0 (the only way to write p = 0).

    ``nan``/``inf`` (which ``float`` would accept) are errors naming the line and the residue column: no tool
    writes them, and they would otherwise become a NaN profile or a silent zero.
    """
    try:
        values = np.array([np.inf if field == "*" else float(field) for field in fields], dtype=np.float64)
    except ValueError as error:
        raise ProfileFormatError(path, number, f"bad emission value ({error})") from None
    bad = np.flatnonzero(~np.isfinite(values) & (np.array(fields) != "*"))
    if bad.size:
        raise ProfileFormatError(
            path, number, f"emission value {fields[bad[0]]!r} (field {bad[0] + 1} of 20) is not a finite number"
        )
    return np.exp(-values * scale)


def _finish(path: Path, number: int, rows: list[np.ndarray], normalize: bool) -> np.ndarray:
    probabilities = np.stack(rows) if rows else np.zeros((0, 20))
    sums = probabilities.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ProfileFormatError(path, number, "a match state has no non-zero emission")
    return probabilities / sums if normalize else probabilities


# ---------------------------------------------------------------- HMMER3


@dataclass
class _HmmerHeader:
    name: str = ""
    length: int | None = None
    consensus: bool = False
    neff: float | None = None
    order: np.ndarray | None = None


def _hmmer_header(path: Path, lines: Iterator[tuple[int, str]], first: tuple[int, str]) -> tuple[_HmmerHeader, int]:
    """Read tag lines up to ``HMM``; returns the header and the line number of the HMM line (order checked)."""
    header = _HmmerHeader()
    number, line = first
    if not line.startswith("HMMER3"):
        raise ProfileFormatError(path, number, f"expected a 'HMMER3/...' format line, got {line[:40]!r}")
    for number, line in lines:
        tag, _, value = line.partition(" ")
        value = value.strip()
        if tag == "NAME":
            header.name = value
        elif tag == "LENG":
            header.length = _integer(path, number, value)
        elif tag == "CONS":
            header.consensus = value.lower() == "yes"
        elif tag == "EFFN":
            header.neff = _number(path, number, value, "EFFN")
        elif tag == "ALPH" and value.lower() != "amino":
            raise ProfileFormatError(path, number, f"only amino-acid models are supported, ALPH is {value!r}")
        elif tag == "HMM":
            header.order = _column_order(path, number, line)
            return header, number
    raise ProfileFormatError(path, number, "missing 'HMM' line (truncated model?)")


def _hmmer_model(path: Path, lines: Iterator[tuple[int, str]], first: tuple[int, str], normalize: bool):
    header, hmm_line_number = _hmmer_header(path, lines, first)
    if header.length is None:
        raise ProfileFormatError(path, hmm_line_number, "missing LENG line")
    body: list[tuple[int, str]] = []
    number = hmm_line_number
    for number, line in lines:
        if line.strip() == "//":
            break
        body.append((number, line))
    else:
        raise ProfileFormatError(path, number, "missing '//' at the end of the model (truncated file?)")
    body = body[1:]  # the transition header line (m->m m->i ...)
    if body and body[0][1].split()[:1] == ["COMPO"]:
        body = body[1:]
    body = body[2:]  # node 0: insert emissions and transitions
    if len(body) != 3 * header.length:
        raise ProfileFormatError(
            path, number, f"LENG is {header.length} but the model body holds {len(body)} lines, not 3 per node"
        )
    rows, letters = [], []
    for node in range(header.length):
        line_number, line = body[3 * node]
        fields = line.split()
        if len(fields) < 21 or fields[0] != str(node + 1):
            raise ProfileFormatError(path, line_number, f"expected match-state line {node + 1} with 20 emissions")
        row = _decode(path, line_number, fields[1:21], 1.0)[header.order]
        rows.append(row)
        cons = fields[22].upper() if header.consensus and len(fields) > 22 else ""
        letters.append(cons if cons in _RESIDUES else _ORDER[int(np.argmax(row))])
    return ProfileFileRecord(header.name, "".join(letters), _finish(path, number, rows, normalize), header.neff)


def read_hmmer_profiles(path: str | Path, normalize: bool = True) -> list[ProfileFileRecord]:
    """All models of a HMMER3 save file (``HMMER3/a``..``/f``; a Pfam-A.hmm holds thousands).

    Match emissions become probabilities ``exp(-x)`` (``*`` = 0), rows renormalised unless ``normalize=False``.
    The sequence is the CONS annotation (upper-cased) when the header says ``CONS yes``, else the argmax
    residue of each state. Insert emissions and transitions are skipped.
    """
    return _read_models(Path(path), _hmmer_model, normalize, "HMMER3")


def read_hmmer_profile(path: str | Path, normalize: bool = True) -> ProfileFileRecord:
    """The single model of a HMMER3 ``.hmm`` file (see :func:`read_hmmer_profiles`; several models → error)."""
    return _single(path, read_hmmer_profiles(path, normalize), "read_hmmer_profiles")


def _read_models(path: Path, read_model, normalize: bool, kind: str) -> list[ProfileFileRecord]:
    """Every model of a file: ``read_model`` consumes one from its first non-blank line through its ``//``."""
    records = []
    lines = _lines(path)
    for number, line in lines:
        if line.strip():
            records.append(read_model(path, lines, (number, line), normalize))
    if not records:
        raise ProfileFormatError(path, 1, f"the file holds no {kind} model")
    return records


def _single(path: str | Path, records: list[ProfileFileRecord], plural: str) -> ProfileFileRecord:
    if len(records) != 1:
        raise ValueError(f"{path}: holds {len(records)} models; use {plural}() to read them all")
    return records[0]


# ---------------------------------------------------------------- HH-suite


def _hhm_model(path: Path, lines: Iterator[tuple[int, str]], first: tuple[int, str], normalize: bool):
    number, line = first
    if not line.startswith("HH"):
        raise ProfileFormatError(path, number, f"expected an 'HHsearch ...' format line, got {line[:40]!r}")
    name, length, neff, order = "", None, None, None
    for number, line in lines:
        tag, _, value = line.partition(" ")
        if tag == "NAME":
            name = value.strip()
        elif tag == "LENG":
            length = _integer(path, number, value.split()[0] if value.split() else "")
        elif tag == "NEFF":
            neff = _number(path, number, value.split()[0] if value.split() else "", "NEFF")
        elif tag == "HMM":
            order = _column_order(path, number, line)
            break
    if order is None or length is None:
        raise ProfileFormatError(path, number, "missing LENG or 'HMM' line (truncated model?)")
    next(lines, None)  # transition header (M->M M->I ...)
    next(lines, None)  # start-state transitions
    rows: list[np.ndarray] = []
    letters: list[str] = []
    for number, line in lines:
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "//":
            break
        if len(fields) != 23 or fields[1] != str(len(rows) + 1):
            raise ProfileFormatError(
                path, number, f"expected match-state line {len(rows) + 1}: letter, index, 20 values, index"
            )
        rows.append(_decode(path, number, fields[2:22], np.log(2) / 1000)[order])
        letters.append(fields[0].upper())
        next(lines, None)  # the state's transition line
    else:
        raise ProfileFormatError(path, number, "missing '//' at the end of the model (truncated file?)")
    if len(rows) != length:
        raise ProfileFormatError(path, number, f"LENG is {length} but {len(rows)} match states were read")
    keep = [i for i, letter in enumerate(letters) if letter in _RESIDUES]
    probabilities = _finish(path, number, rows, normalize)[keep]
    return ProfileFileRecord(name, "".join(letters[i] for i in keep), probabilities, neff)


def read_hhm_profiles(path: str | Path, normalize: bool = True) -> list[ProfileFileRecord]:
    """All models of an HH-suite ``.hhm`` file (several models may be concatenated, as in HH-suite databases).

    Each match line holds the query residue, the state index, 20 values ``-1000 * log2(p)`` (``*`` = 0) and the
    index again; p is decoded and rows renormalised unless ``normalize=False``. The sequence is the residue
    letter of each match line: the query (first) sequence of the alignment the model was built from, which is
    what hhmake's default ``-M first`` makes the match states. A state where the query has a gap (possible with
    ``-M <percent>``) carries no residue and is left out. The SEQ section (consensus, secondary structure,
    display sequences) is not needed and skipped. Probabilities are frequencies without pseudocounts (see the
    module docstring): add them (e.g. mix with the background) before using them as smooth targets.
    """
    return _read_models(Path(path), _hhm_model, normalize, "HH-suite")


def read_hhm_profile(path: str | Path, normalize: bool = True) -> ProfileFileRecord:
    """The single model of an HH-suite ``.hhm`` file (see :func:`read_hhm_profiles`; several models → error)."""
    return _single(path, read_hhm_profiles(path, normalize), "read_hhm_profiles")


def read_profile_file(path: str | Path, normalize: bool = True) -> list[ProfileFileRecord]:
    """All models of a ``.hmm`` or ``.hhm`` file, the format recognised from its first line (gzip allowed)."""
    path = Path(path)
    for number, line in _lines(path):
        if line.strip():
            if line.startswith("HMMER3"):
                return read_hmmer_profiles(path, normalize)
            if line.startswith("HH"):
                return read_hhm_profiles(path, normalize)
            raise ProfileFormatError(path, number, "neither a HMMER3 ('HMMER3/...') nor an HH-suite ('HHsearch') file")
    raise ProfileFormatError(path, 1, "empty file")


def profile_file_examples(path: str | Path) -> list[ProfileExample]:
    """Each model of a ``.hmm``/``.hhm`` file as a training example: its sequence and per-residue targets."""
    return [
        ProfileExample(record.name, record.sequence, record.probabilities.astype(np.float32))
        for record in read_profile_file(path)
    ]
