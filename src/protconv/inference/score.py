"""Zero-shot variant effect scores from a masked language model (Meier et al. 2021, ESM-1v).

Three methods, each a log-likelihood ratio of the variant to the wild type (higher = predicted fitter):

* ``masked-marginal`` (default): for every mutated position ``i``, one forward of the wild type with only ``i``
  masked; the score is the sum over the variant's mutations of ``log p(mutant aa | i masked) - log p(wt aa | i
  masked)``. Every distinct position is computed once, whatever the number of variants that mutate it.
* ``wildtype-marginal``: the same sum read off ONE unmasked forward of the wild type.
* ``pseudo-likelihood``: ``PLL(variant) - PLL(wild type)``, where ``PLL(s) = sum_i log p(s_i | s with i masked)``:
  ``L`` masked forwards per distinct sequence (the slowest by far), all batched together.

Mutations are written as in ProteinGym and ESM: ``H24C`` (wild-type letter, position, mutant letter), several
joined by ``:`` (``H24C:A25D``); ``offset`` is the number of the wild type's first residue. A row whose mutant is
``WT``/``_wt``/``wildtype`` (any case) is the wild type itself and scores 0. Every wild-type letter is checked
against the sequence; malformed names, positions outside the sequence, synonymous mutations and a position
mutated twice in one variant are errors naming the CSV line, raised before the model is loaded.

Residue ``i`` is found at its own token index whatever the tokenizer's framing (with or without ``<cls>``/``<eos>``).

Under ``torchrun``/``accelerate launch`` (``python -m protconv score``) every rank reads and checks the inputs, runs
its share of the masked forwards (:mod:`protconv.inference.gather`) and gets every score; rank 0 alone holds the
output's lock and writes the CSV, the same bytes as one process on the CPU.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from transformers import AutoModelForMaskedLM

from ..data.tables import TableRow
from ..file_guards import OutputFileLock
from ..metrics import spearman
from ..modeling.vocabulary import RESIDUE_CHARACTERS
from ..progress import progress_bar
from ..tokenization.validation import clean_sequence
from .common import (
    DEFAULT_MAX_TOKENS,
    DtypeName,
    InferenceInputError,
    ModelSession,
    check_length_limit,
    check_positive,
)
from .distributed import ONE_PROCESS, Ranks, detect_ranks, plan_chunks, process_group, rank_device, step
from .gather import all_gather_rows, contiguous_shares
from .inputs import CsvTable, atomic_text_output, check_not_inputs, first_fasta_record, read_csv

#: The scoring methods (see the module notes).
ScoreMethod = Literal["masked-marginal", "wildtype-marginal", "pseudo-likelihood"]
METHODS: tuple[ScoreMethod, ...] = get_args(ScoreMethod)
WILD_TYPE_NAMES = frozenset({"wt", "_wt", "wildtype", "wild-type", "wild_type"})
_MUTATION = re.compile(r"^([A-Za-z*])(\d+)([A-Za-z*])$")
_MUTANT_LETTERS = "".join(c for c in RESIDUE_CHARACTERS if c != "-")
_MISSING = frozenset({"", "nan", "na", "n/a", "none", "null"})


@dataclass(frozen=True)
class Mutation:
    wildtype: str
    position: int  # as written (offset applied)
    index: int  # 0-based residue index in the wild type
    mutant: str


@dataclass(frozen=True)
class Variant:
    line: int
    name: str
    mutations: tuple[Mutation, ...]


@dataclass(frozen=True)
class ScoreResult:
    output: Path
    method: ScoreMethod
    column: str
    scores: list[float]
    seconds: float
    forwards: int  # model forward rows run (masked copies of the sequence)
    spearman: float | None = None  # with score_column: Spearman of the scores with that column
    spearman_rows: int = 0  # rows it was computed on
    missing_targets: int = 0  # rows left out for a missing/NaN target
    metrics_file: Path | None = None


def parse_mutant(text: str, wildtype: str, offset: int, where: str) -> tuple[Mutation, ...]:
    """``H24C`` or ``H24C:A25D`` -> mutations, checked against ``wildtype`` (position ``offset`` = index 0).

    ``where`` (``file:line``) starts every error message. An empty tuple is the wild type itself.
    """
    name = text.strip()
    if name.lower() in WILD_TYPE_NAMES:
        return ()
    if not name:
        raise InferenceInputError(f"{where}: empty mutant (write e.g. H24C, H24C:A25D, or WT for the wild type)")
    mutations: list[Mutation] = []
    seen: dict[int, str] = {}
    last = offset + len(wildtype) - 1
    for part in name.split(":"):
        match = _MUTATION.match(part.strip())
        if match is None:
            raise InferenceInputError(
                f"{where}: mutant {name!r}: {part!r} is not a substitution like H24C (wild-type letter, position, "
                "mutant letter; several joined by ':')"
            )
        wt, number, mt = match.group(1).upper(), int(match.group(2)), match.group(3).upper()
        for letter in (wt, mt):
            if letter not in _MUTANT_LETTERS:
                raise InferenceInputError(f"{where}: mutant {name!r}: {letter!r} is not an amino-acid letter")
        index = number - offset
        if not 0 <= index < len(wildtype):
            raise InferenceInputError(
                f"{where}: mutant {name!r}: position {number} is outside the wild type (positions {offset}..{last} "
                f"with offset {offset})"
            )
        if wildtype[index] != wt:
            raise InferenceInputError(
                f"{where}: mutant {name!r}: the wild type has {wildtype[index]!r} at position {number}, not {wt!r} "
                f"(is the offset {offset} right?)"
            )
        if wt == mt:
            raise InferenceInputError(f"{where}: mutant {name!r}: {part} is synonymous (no change)")
        if number in seen:
            raise InferenceInputError(
                f"{where}: mutant {name!r}: position {number} is mutated twice ({seen[number]} and {part})"
            )
        seen[number] = part
        mutations.append(Mutation(wt, number, index, mt))
    return tuple(mutations)


def read_wildtype(sequence: str | None, wildtype: str | Path | None) -> str:
    if sequence is not None and wildtype is None:
        return clean_sequence(sequence, record="the wild-type sequence")
    if wildtype is not None and sequence is None:
        return first_fasta_record(wildtype).sequence
    raise InferenceInputError("give the wild type either as a sequence or as a FASTA file (exactly one of them)")


def score(
    model: str | Path,
    variants: str | Path,
    output: str | Path,
    *,
    sequence: str | None = None,
    wildtype: str | Path | None = None,
    mutant_column: str = "mutant",
    offset: int = 1,
    method: ScoreMethod = "masked-marginal",
    output_column: str | None = None,
    score_column: str | None = None,
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS,
    dtype: DtypeName | torch.dtype = "float32",
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ScoreResult:
    """Score every row of the CSV ``variants`` with the masked LM ``model``; write ``output``.

    The wild type is ``sequence`` or the first record of the FASTA file ``wildtype``. ``output`` is the input
    table (same columns, same delimiter) with one added column, ``output_column`` (default: the method name with
    ``_`` for ``-``), written atomically. With ``score_column``, the Spearman correlation of the scores with that
    column is computed over the rows where it holds a number (empty/NaN rows are left out and counted) and
    written to ``<output stem>.spearman.json``.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise InferenceInputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_positive(max_tokens_per_batch=max_tokens_per_batch)
    output = Path(output)
    metrics = output.with_name(output.stem + ".spearman.json") if score_column else None
    check_not_inputs([output, metrics], [variants, wildtype, model])
    ranks = detect_ranks()
    with process_group(ranks), contextlib.ExitStack() as stack:
        with step(ranks, "score: checking the inputs"):
            if ranks.is_main:  # the one writer holds the output's lock for the run
                stack.enter_context(OutputFileLock(output))
            job = _read_job(variants, sequence, wildtype, mutant_column, offset, method, output_column, score_column)
            session = ModelSession.open(model, dtype, session_device(ranks, device))
            network = load_masked_lm(session, job.wildtype)
        scores, forwards = score_variants(session, network, job.wildtype, job.variants, method, max_tokens_per_batch,
                                          progress, ranks)  # fmt: skip
        result = ScoreResult(output, method, job.column, scores, time.perf_counter() - started, forwards)
        with step(ranks, f"score: writing {output}"):
            if ranks.is_main:
                result = _write_result(result, job, started, model, variants, score_column)
    return result


def session_device(ranks: Ranks, device: str | torch.device | None) -> str | torch.device | None:
    """``--device`` for this process: as given on one process, else this rank's own device."""
    return rank_device(ranks, device) if ranks.distributed else device


@dataclass(frozen=True)
class _Job:
    """The checked inputs of ``score``: read and parsed on every rank (before any model work)."""

    wildtype: str
    table: CsvTable
    rows: list[TableRow]
    variants: list[Variant]
    column: str
    targets: list[float] | None


def _read_job(
    variants: str | Path,
    sequence: str | None,
    wildtype: str | Path | None,
    mutant_column: str,
    offset: int,
    method: ScoreMethod,
    output_column: str | None,
    score_column: str | None,
) -> _Job:
    column = output_column or method.replace("-", "_")
    wt = read_wildtype(sequence, wildtype)
    table, rows = _read_table(variants)
    mutant_index, target_index = _input_columns(table, mutant_column, column, score_column)
    parsed = _parse_variants(table, rows, mutant_index, wt, offset)
    targets = _targets(table, rows, target_index) if target_index is not None else None
    return _Job(wt, table, rows, parsed, column, targets)


def _write_result(
    result: ScoreResult, job: _Job, started: float, model: str | Path, variants: str | Path, score_column: str | None
) -> ScoreResult:
    """The table with the score column (written atomically) and, with a score column, its Spearman file."""
    with atomic_text_output(result.output) as handle:
        writer = csv.writer(handle, delimiter=job.table.delimiter, lineterminator="\n")
        writer.writerow([*job.table.header, job.column])
        for row, value in zip(job.rows, result.scores, strict=True):
            writer.writerow([*row.fields, repr(value)])
    result = replace(result, seconds=time.perf_counter() - started)
    if job.targets is not None and score_column is not None:
        result = _with_spearman(result, job.targets, model, variants, score_column)
    return result


def load_masked_lm(session: ModelSession, wildtype: str) -> torch.nn.Module:
    """The session's masked LM, loaded once the wild type is known to fit it and the tokenizer has a mask token
    (so a bad input is reported before the weights are read)."""
    _wild_type_tokens(session, wildtype)
    network, _ = session.load(AutoModelForMaskedLM, "a masked-LM head (lm_head)")
    return network


def score_variants(
    session: ModelSession,
    network: torch.nn.Module,
    wildtype: str,
    variants: Sequence[Variant],
    method: ScoreMethod = "masked-marginal",
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS,
    progress: bool = False,
    ranks: Ranks = ONE_PROCESS,
) -> tuple[list[float], int]:
    """Each variant's score under ``method`` (checked variants of ``wildtype``) with a loaded masked LM
    (:func:`load_masked_lm`), and the forward rows it took: ``score`` (a CSV), ``scan`` (every substitution) and
    ``evaluate`` (one model, many assays) all score through this one function.

    With ``ranks`` of several processes (inside their process group), every rank calls it with the same
    arguments, runs its share of the masked forwards and returns every score, equal to one process's bit for bit
    on the CPU (``wildtype-marginal``'s one forward runs on every rank)."""
    mask_id, ids, residue_tokens = _wild_type_tokens(session, wildtype)
    runner = _Runner(network, mask_id, max(1, max_tokens_per_batch // len(ids)), session.device, ranks)
    scores = _scores(method, runner, ids, residue_tokens, list(variants), _letter_ids(session.tokenizer), progress)
    return scores, runner.forwards


def _input_columns(
    table: CsvTable, mutant_column: str, output_column: str, score_column: str | None
) -> tuple[int, int | None]:
    """The indices of the mutant and (if named) score columns; the output column must not exist yet."""
    mutant_index = table.column(mutant_column, "the mutant column, e.g. H24C or H24C:A25D")
    if output_column in table.header:
        raise InferenceInputError(
            f"{table.path}: already has a column {output_column!r}; choose another output column name"
        )
    return mutant_index, table.column(score_column, "the score column") if score_column else None


def _parse_variants(
    table: CsvTable, rows: list[TableRow], mutant_index: int, wildtype: str, offset: int
) -> list[Variant]:
    """Every row's mutations, checked against the wild type (errors name the CSV line)."""
    return [
        Variant(
            row.line,
            row.fields[mutant_index],
            parse_mutant(row.fields[mutant_index], wildtype, offset, f"{table.path}:{row.line}"),
        )
        for row in rows
    ]


def _wild_type_tokens(session: ModelSession, wildtype: str) -> tuple[int, list[int], list[int]]:
    """The mask token id, the wild type's token ids and the token index of each residue."""
    tokenizer = session.tokenizer
    mask_id = tokenizer.mask_token_id
    if mask_id is None or (mask_id == tokenizer.unk_token_id and tokenizer.mask_token != tokenizer.unk_token):
        raise InferenceInputError(
            f"{session.source}: its tokenizer has no mask token (mask_token in tokenizer_config.json, in the "
            "vocabulary); scoring needs a masked LM's mask token"
        )
    encoded = tokenizer(wildtype, return_special_tokens_mask=True)
    ids, special = list(encoded["input_ids"]), encoded["special_tokens_mask"]
    residue_tokens = [j for j, is_special in enumerate(special) if not is_special]
    if len(residue_tokens) != len(wildtype):
        raise InferenceInputError(
            f"{session.source}: its tokenizer made {len(residue_tokens)} residue tokens of the {len(wildtype)} "
            "residues of the wild type; protconv needs one token per residue"
        )
    check_length_limit(session.config, len(ids), "the wild type")
    return mask_id, ids, residue_tokens


def _scores(
    method: ScoreMethod,
    runner: _Runner,
    ids: list[int],
    residue_tokens: list[int],
    variants: list[Variant],
    letter_ids: dict[str, int],
    progress: bool,
) -> list[float]:
    """Each variant's log-likelihood ratio to the wild type under ``method`` (see the module notes)."""
    if method == "pseudo-likelihood":
        return _pseudo_likelihood(runner, ids, residue_tokens, variants, letter_ids, progress)
    if method == "masked-marginal":
        positions = sorted({m.index for v in variants for m in v.mutations})
        log_probs = runner.masked_log_probs(ids, residue_tokens, positions, progress)
    else:
        log_probs = runner.unmasked_log_probs(ids, residue_tokens)
    return [
        float(
            sum(
                log_probs[m.index][letter_ids[m.mutant]] - log_probs[m.index][letter_ids[m.wildtype]]
                for m in v.mutations
            )
        )
        for v in variants
    ]


def _read_table(path: str | Path) -> tuple[CsvTable, list[TableRow]]:
    with read_csv(path) as (table, rows):
        return table, list(rows)


def _targets(table: CsvTable, rows: list[TableRow], index: int) -> list[float]:
    values = []
    for row in rows:
        raw = row.fields[index].strip()
        if raw.lower() in _MISSING:
            values.append(math.nan)
            continue
        try:
            values.append(float(raw))
        except ValueError:
            raise InferenceInputError(
                f"{table.path}:{row.line}: score column {table.header[index]!r} holds {raw!r}, not a number "
                "(leave the cell empty or write NaN for a missing value)"
            ) from None
    return values


def _with_spearman(result: ScoreResult, targets: list[float], model, variants, score_column: str) -> ScoreResult:
    scores = result.scores
    keep = [i for i, value in enumerate(targets) if math.isfinite(value)]
    rho = (
        spearman(np.array([scores[i] for i in keep]), np.array([targets[i] for i in keep]))
        if len(keep) > 1
        else math.nan
    )
    metrics_file = result.output.with_name(result.output.stem + ".spearman.json")
    payload = {
        "model": str(model),
        "variants": str(variants),
        "method": result.method,
        "output_column": result.column,
        "score_column": score_column,
        "spearman": rho if math.isfinite(rho) else None,
        "rows": len(keep),
        "missing_targets": len(targets) - len(keep),
    }
    with atomic_text_output(metrics_file) as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    return replace(
        result,
        spearman=rho,
        spearman_rows=len(keep),
        missing_targets=len(targets) - len(keep),
        metrics_file=metrics_file,
    )


def _letter_ids(tokenizer) -> dict[str, int]:
    ids = {}
    for letter in _MUTANT_LETTERS:
        token = tokenizer.convert_tokens_to_ids(letter)
        if token is None or token == tokenizer.unk_token_id:
            continue
        ids[letter] = token
    missing = [letter for letter in "ACDEFGHIKLMNPQRSTVWY" if letter not in ids]
    if missing:
        raise InferenceInputError(f"the model's tokenizer has no token for amino acids {''.join(missing)}")
    return _StrictIds(ids)


class _StrictIds(dict):
    def __missing__(self, letter: str) -> int:
        raise InferenceInputError(f"the model's tokenizer has no token for {letter!r}")


class _Runner:
    """Batched forwards of equal-length token rows, each with one position masked (or none). On N ranks
    (:mod:`protconv.inference.gather`) each runs its contiguous share of the one-process batches (or of their
    row slices, :meth:`_pieces`) and every rank gets every result; ``forwards`` counts the rows of all ranks (the
    one-process count)."""

    def __init__(self, network, mask_id: int, batch_size: int, device: torch.device, ranks: Ranks = ONE_PROCESS):
        self.network, self.mask_id, self.batch_size, self.device = network, mask_id, batch_size, device
        self.ranks = ranks
        self.forwards = 0

    def _log_softmax(self, rows: list[list[int]]) -> torch.Tensor:
        """``(rows, tokens, vocab)`` float32 log-probabilities."""
        input_ids = torch.tensor(rows, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            logits = self.network(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits
        self.forwards += len(rows)
        return torch.log_softmax(logits.float(), dim=-1)

    def masked(self, ids: list[int], token: int) -> list[int]:
        row = list(ids)
        row[token] = self.mask_id
        return row

    def _pieces(self, rows: int) -> list[range]:
        """This rank's rows, one forward per range: the one-process batches of ``batch_size`` rows and, with too
        few of them for the ranks, their row slices of two rows or more (``plan_chunks(split=True)``, as ``embed``
        cuts: every row has the same width, and a slice of >= 2 rows gives its batch's bits on the CPU, a one-row
        Conv slice does not), a contiguous run of them per rank (all of them on one process)."""
        plan = plan_chunks([1] * rows, max(1, rows), self.batch_size, 0, self.ranks.world_size, split=True)
        pieces = [range(b.members[0], b.members[-1] + 1) for batches in plan for b in batches]
        share = contiguous_shares([len(piece) for piece in pieces], self.ranks.world_size)[self.ranks.rank]
        return pieces[share.start : share.stop]

    def _gathered(self, mine: list[np.ndarray], width: int, rows: int, what: str) -> np.ndarray:
        """Every rank's rows in the one-process order (after a step: no rank waits here for a failed one)."""
        local = np.concatenate(mine) if mine else np.zeros((0, width), dtype=np.float32)
        found = all_gather_rows(self.ranks, local)
        if len(found) != rows:
            raise RuntimeError(f"{what}: gathered {len(found)} rows of the ranks, expected {rows}")
        self.forwards += rows - len(local)
        return found

    def masked_log_probs(
        self, ids: list[int], residue_tokens: list[int], positions: list[int], progress: bool
    ) -> dict[int, np.ndarray]:
        """Residue index -> log-probabilities over the vocabulary with that residue (alone) masked."""
        batches = [positions[piece.start : piece.stop] for piece in self._pieces(len(positions))]
        mine: list[np.ndarray] = []
        bar = progress_bar(sum(map(len, batches)), "masked-marginal", progress and self.ranks.is_main, unit="pos")
        with step(self.ranks, "score: the masked positions"):
            try:
                for batch in batches:
                    log_probs = self._log_softmax([self.masked(ids, residue_tokens[i]) for i in batch])
                    mine.append(log_probs[torch.arange(len(batch)), [residue_tokens[i] for i in batch]].cpu().numpy())
                    bar.update(len(batch))
            finally:
                bar.close()
        width = mine[0].shape[1] if mine else 0
        return dict(zip(positions, self._gathered(mine, width, len(positions), "masked-marginal"), strict=True))

    def unmasked_log_probs(self, ids: list[int], residue_tokens: list[int]) -> dict[int, np.ndarray]:
        log_probs = self._log_softmax([ids])[0, residue_tokens].cpu().numpy()
        return dict(enumerate(log_probs))

    def pseudo_log_likelihoods(
        self, sequences: list[list[int]], residue_tokens: list[int], progress: bool
    ) -> list[float]:
        """``sum_i log p(s_i | s with residue i masked)`` of each token row in ``sequences``, summed in the
        one-process order (sequence by sequence, residue by residue) whatever the number of ranks."""
        count = len(sequences) * len(residue_tokens)
        jobs = [(s, t) for s in range(len(sequences)) for t in residue_tokens]
        batches = [jobs[piece.start : piece.stop] for piece in self._pieces(count)]
        mine: list[np.ndarray] = []
        bar = progress_bar(sum(map(len, batches)), "pseudo-likelihood", progress and self.ranks.is_main, unit="fwd")
        with step(self.ranks, "score: the pseudo-likelihoods"):
            try:
                for batch in batches:
                    log_probs = self._log_softmax([self.masked(sequences[s], t) for s, t in batch])
                    rows = torch.arange(len(batch))
                    tokens = torch.tensor([t for _, t in batch])
                    truth = torch.tensor([sequences[s][t] for s, t in batch])
                    mine.append(log_probs[rows, tokens, truth].cpu().numpy()[:, None])
                    bar.update(len(batch))
            finally:
                bar.close()
        values = self._gathered(mine, 1, count, "pseudo-likelihood")[:, 0]
        length = len(residue_tokens)
        totals = [0.0] * len(sequences)
        for s in range(len(sequences)):
            for value in values[s * length : (s + 1) * length].astype(np.float64).tolist():
                totals[s] += value
        return totals


def _pseudo_likelihood(
    runner: _Runner,
    ids: list[int],
    residue_tokens: list[int],
    variants: Sequence[Variant],
    letter_ids: dict[str, int],
    progress: bool,
) -> list[float]:
    """PLL(variant) - PLL(wild type), each distinct sequence computed once."""
    keys: dict[tuple[tuple[int, str], ...], int] = {(): 0}
    rows = [ids]
    for variant in variants:
        key = tuple(sorted((m.index, m.mutant) for m in variant.mutations))
        if key not in keys:
            keys[key] = len(rows)
            row = list(ids)
            for index, mutant in key:
                row[residue_tokens[index]] = letter_ids[mutant]
            rows.append(row)
    totals = runner.pseudo_log_likelihoods(rows, residue_tokens, progress)
    return [
        totals[keys[tuple(sorted((m.index, m.mutant) for m in variant.mutations))]] - totals[0] for variant in variants
    ]


def pseudo_log_likelihood(
    session: ModelSession, network: torch.nn.Module, sequence: str, max_tokens_per_batch: int = DEFAULT_MAX_TOKENS
) -> float:
    """``sum_i log p(s_i | s with residue i alone masked)`` with a loaded masked LM (the exact per-residue
    likelihood that ``protconv evaluate``'s masked-LM perplexity is made of)."""
    mask_id, ids, residue_tokens = _wild_type_tokens(session, sequence)
    runner = _Runner(network, mask_id, max(1, max_tokens_per_batch // len(ids)), session.device)
    return runner.pseudo_log_likelihoods([ids], residue_tokens, False)[0]
