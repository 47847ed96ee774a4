"""What embed, score and predict share: the model session (source, dtype, device, config, tokenizer, then the
weights), and token-budget batches of whole sequences.

Batches follow the idea of :mod:`protconv.data.batching` (sort by length, cut greedily at a token budget that
counts padding) without its cropping: inference runs every sequence whole, and a sequence longer than the budget
runs alone in its own batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import importlib.metadata
import inspect
import logging
import re
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, cast, get_args

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from ..model_source import check_vocabulary, load_tokenizer, position_limit, position_limit_reason
from ..registry import has_saved_weights, load_pretrained
from ..tokenization.encoding import NotOneTokenPerResidueError, SequenceEncoder

T = TypeVar("T")

#: Default token budget of a batch, padding and special tokens included.
DEFAULT_MAX_TOKENS = 16384
#: The compute dtypes of the inference commands, by the name ``--dtype`` takes.
DtypeName = Literal["float32", "bfloat16", "float16"]
DTYPES: dict[DtypeName, torch.dtype] = dict(
    zip(get_args(DtypeName), (torch.float32, torch.bfloat16, torch.float16), strict=True)
)
# A Hub repository id: "name" or "owner/name" (letters, digits, '-', '_', '.').
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DEFERRED = (signal.SIGINT, signal.SIGTERM)
#: transformers' logger of ``from_pretrained``'s load report (missing/unexpected keys), which ``load_model``
#: replaces by its own check.
_LOAD_REPORT_LOGGER = "transformers.modeling_utils"
#: The end of a too-long message, by whether the limit comes from learned absolute positions.
_LONGER_MODELS = {True: ", or use a model with rotary positions or a Conv model", False: ""}


class InferenceInputError(ValueError):
    """A user input embed/score/predict refuses: a bad option, record, CSV row or model. One-line message that
    names the file, record, line or position at fault."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: the GPU when there is one, else the CPU; otherwise the named device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise InferenceInputError(f"--device: unknown device {device!r} ({error})") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InferenceInputError(
                f"--device {device}: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                "use --device cpu, or auto (the GPU when there is one)"
            )
        if resolved.index is not None and resolved.index >= count:
            raise InferenceInputError(f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0..{count - 1}")
    return resolved


def resolve_dtype(dtype: DtypeName | str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise InferenceInputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise InferenceInputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> DtypeName:
    return next(name for name, value in DTYPES.items() if value == dtype)


def check_model_source(model: str | Path) -> str:
    """``model`` as a string, after checking that a local path exists: a model folder or a Hub id."""
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InferenceInputError(f"{path}: not a model folder (expected a folder with config.json)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json in this folder; is it a saved model folder?")
        return str(path)
    if not _HUB_ID.match(text) or text.startswith((".", "~")):
        raise FileNotFoundError(f"{text}: no such model folder (and not a Hugging Face Hub id)")
    return text


def load_config(model: str) -> PretrainedConfig:
    return AutoConfig.from_pretrained(model)


def load_model(
    model: str, auto_class: type, dtype: torch.dtype, device: torch.device, what: str
) -> tuple[PreTrainedModel, str]:
    """``auto_class`` weights of ``model`` in eval mode on ``device``, and a fingerprint of their values.

    Weights the checkpoint lacks would be random: that is an error naming them (``what`` says which part the
    command needs, e.g. "a masked-LM head"), never a silent random model. One exception, which no command reads:
    the pooler of a transformers encoder (``EsmModel``, ``BertModel``) loaded from a masked-LM checkpoint, which
    has none. It is removed, as ``add_pooling_layer=False`` would build it, not left random. The fingerprint
    (computed on the CPU, before the move) identifies the weights whatever the folder is called.
    """
    has_saved_weights(model)  # a folder holding only unsafe weight formats: WeightsFormatError
    # With output_loading_info, from_pretrained returns (model, info); registry.load_pretrained's annotation
    # names the model alone.
    with _quiet_load_report():
        loaded, info = cast(
            tuple[PreTrainedModel, dict[str, list[str]]],
            load_pretrained(auto_class, model, dtype=dtype, output_loading_info=True),
        )
    missing = _drop_missing_pooler(loaded, sorted(info.get("missing_keys") or ()))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise InferenceInputError(
            f"{model}: the checkpoint lacks weights of {type(loaded).__name__} ({shown}); this command needs {what}"
        )
    fingerprint = weights_fingerprint(loaded)
    # PreTrainedModel.to is decorated with functools.wraps, whose typeshed type does not bind ``self``.
    return loaded.to(device).eval(), fingerprint  # type: ignore[arg-type]


def _drop_missing_pooler(loaded: PreTrainedModel, missing: list[str]) -> list[str]:
    """``missing`` without the pooler's keys when the whole pooler is missing and the class can run without one
    (its ``__init__`` takes ``add_pooling_layer``); the pooler is then removed from ``loaded``."""
    pooler = {key for key in missing if key.startswith("pooler.")}
    module = getattr(loaded, "pooler", None)
    if not pooler or not isinstance(module, torch.nn.Module):
        return missing
    own = {f"pooler.{name}" for name in module.state_dict()}
    if pooler != own or "add_pooling_layer" not in inspect.signature(type(loaded).__init__).parameters:
        return missing
    setattr(loaded, "pooler", None)  # noqa: B010  (nn.Module.__setattr__ types its value as Tensor | Module)
    return [key for key in missing if key not in own]


@contextmanager
def _quiet_load_report() -> Iterator[None]:
    """Hide transformers' load report (``MISSING ... newly initialized``, ``UNEXPECTED`` head weights) unless the
    run logs at DEBUG: ``load_model`` checks the missing keys itself, and the unexpected ones are the heads a
    command does not use. A filter on that one record: raising the logger's level would make transformers 5.25
    log its tensor-parallel plan instead (its check runs when the level is WARNING or more)."""
    logger = logging.getLogger(_LOAD_REPORT_LOGGER)
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    logger.addFilter(_drop_load_report)
    try:
        yield
    finally:
        logger.removeFilter(_drop_load_report)


def _drop_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in str(record.msg)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of every tensor's name, shape, dtype and value sums (float64): equal weights, equal hash."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            values = tensor.detach().to("cpu", torch.float64)
            digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
            digest.update(f"{float(values.sum()):.17g}|{float((values * values).sum()):.17g};".encode())
    return digest.hexdigest()[:16]


def check_positive(**options: int) -> None:
    """Refuse a batch size, token budget or chunk size below 1, naming the option."""
    for name, value in options.items():
        if value < 1:
            raise InferenceInputError(f"--{name} must be positive, got {value}")


@dataclass(frozen=True)
class ModelSession:
    """What every inference command opens before it reads its inputs, in one order with one set of checks: the
    ``--model`` source (a folder or Hub id), the compute dtype and device, the config, and the tokenizer that
    goes with the model (``model_source.load_tokenizer``). The weights come last (``load``), once the command
    has validated its whole input against the config and the tokenizer: a bad input never waits for a model.
    """

    source: str
    dtype: torch.dtype
    device: torch.device
    config: PretrainedConfig
    tokenizer: PreTrainedTokenizerBase

    @classmethod
    def open(
        cls, model: str | Path, dtype: DtypeName | str | torch.dtype, device: str | torch.device | None
    ) -> ModelSession:
        source = check_model_source(model)
        torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
        config = load_config(source)
        tokenizer = load_tokenizer(source)
        check_vocabulary(tokenizer, source)
        return cls(source, torch_dtype, torch_device, config, tokenizer)

    def encoder(self) -> SequenceEncoder:
        """The fast batch encoder of the tokenizer (which must give one token per residue: positions are
        residues in every command)."""
        try:
            return SequenceEncoder(self.tokenizer)
        except NotOneTokenPerResidueError as error:
            raise InferenceInputError(f"{self.source}: {error}") from None

    def load(self, auto_class: type, what: str) -> tuple[PreTrainedModel, str]:
        """The weights (``load_model``: eval mode, on the device, every weight present) and their fingerprint."""
        return load_model(self.source, auto_class, self.dtype, self.device, what)


def check_length_limit(config: PretrainedConfig, tokens: int, where: str) -> None:
    """A sequence longer than the model's position limit (``model_source.position_limit``: learned absolute
    positions, or ESM-2's training context) is refused up front, naming it and the limit: never cropped or
    windowed silently."""
    limit = position_limit(config)
    absolute = "absolute positions" in position_limit_reason(config) if limit is not None else False
    if limit is not None and tokens > limit:
        raise InferenceInputError(
            f"{where}: {tokens} tokens (special tokens included) exceed this model's {position_limit_reason(config)}; "
            f"protconv runs sequences whole, so shorten or split this sequence{_LONGER_MODELS[absolute]}"
        )


def plan_batches(lengths: Sequence[int], max_tokens: int, special_tokens: int = 0) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches of at most ``max_tokens`` padded tokens (special tokens
    included), longest first, each batch of similar lengths; no sequence is cropped, and one longer than the
    budget is a batch of its own. Longest first: a budget too large for the device fails at once, not at the end.
    """
    check_positive(max_tokens_per_batch=max_tokens)
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    group: list[int] = []
    width = 0
    for i in order:
        if group and (len(group) + 1) * width > max_tokens:
            batches.append(group)
            group = []
        if not group:
            width = lengths[i] + special_tokens  # the first (longest) member sets the padded width
        group.append(i)
    if group:
        batches.append(group)
    return batches


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def residue_positions(
    inputs: dict[str, torch.Tensor], encoder: SequenceEncoder, lengths: Sequence[int]
) -> torch.Tensor:
    """The boolean residue mask of a batch, checked against the residue counts: attended tokens other than the
    tokenizer's framing (``<cls>``, ``<eos>``) and padding. The tokenizer's ids, not the config's: a transformers
    config (``EsmConfig``) need not name a ``cls_token_id``; for protconv models both agree
    (``pooling.residue_mask``)."""
    framing = encoder.framing
    special = {*framing.prefix_ids, *framing.suffix_ids, encoder.tokenizer.pad_token_id} - {None}
    input_ids = inputs["input_ids"]
    ids = torch.tensor(sorted(special), dtype=input_ids.dtype, device=input_ids.device)
    mask = inputs["attention_mask"].bool() & ~torch.isin(input_ids, ids)
    counts = mask.sum(dim=1).tolist()
    if counts != list(lengths):
        raise RuntimeError(f"tokenizer/model mismatch: residue counts {counts} for sequences of lengths {lengths}")
    return mask


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block ends, then deliver them: an output commit (an HDF5
    write and flush) is never cut in half by them. Only in the main thread (elsewhere signals cannot be caught)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in _DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])


def _load_libc_trim():
    """glibc's ``malloc_trim``, or None (another C library, or none found)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _load_libc_trim()


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc ``malloc_trim``). Inference runs ever-changing tensor
    shapes, whose freed blocks glibc keeps in fragmented arenas: embed's resident memory grew by hundreds of MiB
    over 25k proteins without this (``benchmarks/results/embed_memory.md``). A no-op elsewhere."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def package_version() -> str:
    try:
        return importlib.metadata.version("protconv")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        import protconv

        return protconv.__version__
