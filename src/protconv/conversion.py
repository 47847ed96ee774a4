"""Convert original CARP checkpoints (``sequence_models`` ``.pt`` files) into Hub-ready protconv folders.

The checkpoint is read with ``torch.load(weights_only=True)``: only tensors and plain containers are accepted,
so a malicious or foreign pickle is refused rather than executed.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard
from tqdm.auto import tqdm

from .hub import save_hub_folder
from .model_card import CardResult, build_card
from .modeling import ConvConfig, ConvForMaskedLM
from .modeling.vocabulary import CLS_TOKEN, EOS_TOKEN, GAP, MASK_TOKEN, PAD_TOKEN, TOKEN_TO_ID, UNK_TOKEN
from .tokenization import build_tokenizer

#: sequence_models.constants.PROTEIN_ALPHABET: 26 letters, stop, gap (= padding), mask, start.
CARP_ALPHABET = "ACDEFGHIKLMNPQRSTVWYBZXJOU*-#@"
_CARP_SPECIALS = {"-": PAD_TOKEN, "#": MASK_TOKEN, "@": CLS_TOKEN}
#: protconv tokens CARP never saw, and the CARP token whose input embedding stands in for each.
_BORROWED_EMBEDDINGS = {GAP: "-", UNK_TOKEN: "X", EOS_TOKEN: "*"}
#: Decoder bias for tokens CARP cannot predict: exp(-1e4) vanishes in softmax, so probabilities over the
#: 30 CARP tokens are unchanged, and the value is finite in fp16/bf16.
NEVER_PREDICTED_BIAS = -1.0e4

_BLOCK_MAP = {
    "sequence1.0": "norm_in",
    "sequence1.2.conv": "proj_in",
    "sequence1.3": "norm_conv_in",
    "conv": "dilated_conv",
    "sequence2.0": "norm_out",
    "sequence2.2.conv": "proj_out",
}


class CarpCheckpointError(ValueError):
    """The file is not a readable CARP checkpoint."""


def carp_token_map() -> dict[int, int]:
    """CARP token index -> protconv token id, for all 30 CARP tokens."""
    return {i: TOKEN_TO_ID[_CARP_SPECIALS.get(char, char)] for i, char in enumerate(CARP_ALPHABET)}


def load_carp_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a CARP ``.pt`` dict safely; raise ``CarpCheckpointError`` naming the file on anything unexpected."""
    path = Path(path)
    if not path.is_file():
        raise CarpCheckpointError(f"{path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise CarpCheckpointError(
            f"{path}: not a readable PyTorch checkpoint of tensors and plain values ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if not isinstance(data, dict) or not isinstance(data.get("model_state_dict"), dict):
        raise CarpCheckpointError(f"{path}: expected a dict with 'model_state_dict' (the sequence_models format)")
    return data


def strip_ddp_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DistributedDataParallel ``module.`` prefix if every key carries it."""
    if state and all(key.startswith("module.") for key in state):
        return {key.removeprefix("module."): value for key, value in state.items()}
    return dict(state)


def carp_config(data: dict[str, Any], path: Path) -> ConvConfig:
    """Hyper-parameters from the weights' shapes, cross-checked with those recorded in the checkpoint."""
    state = strip_ddp_prefix(data["model_state_dict"])
    required = [
        "embedder.embedder.weight",
        "embedder.up_embedder.conv.weight",
        "embedder.layers.0.conv.weight",
        "last_norm.weight",
        "decoder.conv.weight",
    ]
    missing = [key for key in required if key not in state]
    if missing:
        raise CarpCheckpointError(f"{path}: not a CARP ByteNetLM state dict (missing {missing})")
    n_tokens, d_embed = state["embedder.embedder.weight"].shape
    if n_tokens != len(CARP_ALPHABET):
        raise CarpCheckpointError(
            f"{path}: {n_tokens} tokens, expected CARP's {len(CARP_ALPHABET)} (BigCARP is not supported)"
        )
    layer_ids = {int(m.group(1)) for key in state if (m := re.match(r"embedder\.layers\.(\d+)\.", key))}
    d_h, _, kernel = state["embedder.layers.0.conv.weight"].shape
    inferred = {
        "d_embed": d_embed,
        "d_model": state["embedder.up_embedder.conv.weight"].shape[0],
        "n_layers": len(layer_ids),
        "kernel_size": kernel,
    }
    for key, value in inferred.items():
        if key in data and int(data[key]) != value:
            raise CarpCheckpointError(f"{path}: recorded {key}={data[key]} but the weights say {value}")
    for key in ("r", "activation"):
        if key not in data:
            raise CarpCheckpointError(f"{path}: hyper-parameter {key!r} missing (it cannot be read off the weights)")
    return ConvConfig(
        embedding_size=d_embed,
        hidden_size=inferred["d_model"],
        intermediate_size=d_h,
        num_hidden_layers=inferred["n_layers"],
        kernel_size=kernel,
        max_dilation=int(data["r"]),
        hidden_act=str(data["activation"]),
    )


def _linear(weight: torch.Tensor) -> torch.Tensor:
    """A 1x1 Conv1d weight (out, in, 1) as a Linear weight (out, in)."""
    return weight.squeeze(-1)


def carp_state_dict(state: dict[str, torch.Tensor], config: ConvConfig, path: Path) -> dict[str, torch.Tensor]:
    """Rename CARP weights to protconv's and re-index the token rows onto protconv's vocabulary."""
    state = strip_ddp_prefix(state)
    token_map = carp_token_map()
    carp_index = {char: i for i, char in enumerate(CARP_ALPHABET)}
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return state[key]

    embedding = take("embedder.embedder.weight")
    words = embedding.new_zeros(config.vocab_size, embedding.shape[1])
    for carp_id, our_id in token_map.items():
        words[our_id] = embedding[carp_id]
    for token, carp_char in _BORROWED_EMBEDDINGS.items():
        words[TOKEN_TO_ID[token]] = embedding[carp_index[carp_char]]
    out["conv.embeddings.word_embeddings.weight"] = words
    out["conv.embeddings.up_projection.weight"] = _linear(take("embedder.up_embedder.conv.weight"))
    out["conv.embeddings.up_projection.bias"] = take("embedder.up_embedder.conv.bias")
    for layer in range(config.num_hidden_layers):
        for source, target in _BLOCK_MAP.items():
            for param in ("weight", "bias"):
                value = take(f"embedder.layers.{layer}.{source}.{param}")
                if source.endswith(".conv") and param == "weight":
                    value = _linear(value)
                out[f"conv.layers.{layer}.{target}.{param}"] = value
    out["conv.final_layer_norm.weight"] = take("last_norm.weight")
    out["conv.final_layer_norm.bias"] = take("last_norm.bias")
    decoder_w, decoder_b = _linear(take("decoder.conv.weight")), take("decoder.conv.bias")
    lm_weight = decoder_w.new_zeros(config.vocab_size, decoder_w.shape[1])
    lm_bias = decoder_b.new_full((config.vocab_size,), NEVER_PREDICTED_BIAS)
    for carp_id, our_id in token_map.items():
        lm_weight[our_id], lm_bias[our_id] = decoder_w[carp_id], decoder_b[carp_id]
    out["lm_head.weight"], out["lm_head.bias"] = lm_weight, lm_bias
    unused = sorted(set(state) - used)
    if unused:
        raise CarpCheckpointError(f"{path}: weights this converter does not understand: {unused[:5]}")
    return out


_CARP_TRAINING = (
    "Trained by CARP's authors with the masked-LM objective on UniRef50 (see the paper for the release, the "
    "held-out splits and the training schedule); protconv only converted the weights. The conversion is checked "
    "against `sequence_models.ByteNetLM` on real proteins to 1e-5."
)


def carp_card(
    model: ConvForMaskedLM,
    name: str,
    checkpoint_name: str,
    *,
    reference: str = "path/to/this/folder",
    details: dict[str, Any] | None = None,
    results: Sequence[CardResult] = (),
    sections: dict[str, str] | None = None,
) -> ModelCard:
    """The card of a converted CARP model; ``protconv release`` adds its parity figure, evaluation results and
    source to the same card ``convert-carp`` writes."""
    config = model.config
    return build_card(
        model,
        title=f"{name} (CARP, converted to protconv)",
        summary=(
            "A CARP dilated-CNN protein masked language model (Yang, Fusi, Lu, *Convolutions are competitive with "
            "transformers for protein sequence pretraining*), converted from the original `sequence_models` "
            "checkpoint with `protconv convert-carp`. Outputs equal the reference implementation to float precision. "
            "Inputs carry no start/stop tokens, as in CARP."
        ),
        reference=reference,
        details={
            "source checkpoint": checkpoint_name,
            "dilations": config.dilations[: config.max_dilation.bit_length()],
            **(details or {}),
        },
        results=results,
        sections={"Training": _CARP_TRAINING, **(sections or {})},
    )


#: The stages of ``convert_carp``'s progress bar.
_STAGES = ("reading the checkpoint", "mapping the weights", "writing the folder")


def convert_carp(
    checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False, progress: bool | None = None
) -> Path:
    """Convert a CARP checkpoint into a Hub-ready folder whose tokenizer adds no ``<cls>``/``<eos>`` (as CARP).

    ``progress``: a bar over the stages on stderr (reading and writing carp-640m take tens of seconds); by default
    only on a terminal, so that logs and pipes get no bar lines.
    """
    disable = None if progress is None else not progress
    with tqdm(total=len(_STAGES), desc="convert-carp", unit="stage", disable=disable, leave=False) as bar:
        return _convert(Path(checkpoint), out_dir, overwrite, bar)


def _next_stage(bar: tqdm) -> None:
    """Count the stage done and name the next one."""
    bar.update()
    if bar.n < len(_STAGES):
        bar.set_postfix_str(_STAGES[int(bar.n)])  # tqdm types its count int | float


def _convert(checkpoint: Path, out_dir: str | Path, overwrite: bool, bar: tqdm) -> Path:
    bar.set_postfix_str(_STAGES[0])
    data = load_carp_checkpoint(checkpoint)
    _next_stage(bar)
    config = carp_config(data, checkpoint)
    model = ConvForMaskedLM(config)
    model.load_state_dict(carp_state_dict(data["model_state_dict"], config, checkpoint), strict=True)
    model.eval()
    _next_stage(bar)
    card = carp_card(model, str(data.get("model", checkpoint.stem)), checkpoint.name)
    folder = save_hub_folder(
        model, build_tokenizer(add_cls=False, add_eos=False), out_dir, card=card, overwrite=overwrite
    )
    _next_stage(bar)
    return folder
