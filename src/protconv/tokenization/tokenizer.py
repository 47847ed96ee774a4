"""Build the protein tokenizer as a plain ``PreTrainedTokenizerFast``.

A plain fast tokenizer (no protconv subclass) is what lets a saved folder's tokenizer load on a machine where
protconv is not installed: everything it does is serialised in ``tokenizer.json``, and ``tokenizer_config.json``
names a transformers class, so no code from the folder runs.

One caveat comes from transformers, not from these files: since transformers 5, ``AutoTokenizer.from_pretrained``
always reads the folder's model config first. In a model folder that config is protconv's (a ``model_type``
transformers does not know, ``auto_map`` pointing at the shipped code), so without protconv ``AutoTokenizer`` asks
whether to trust that code (15 s) and then warns, unless it is given ``trust_remote_code=True``.
``PreTrainedTokenizerFast.from_pretrained(folder)`` reads only the tokenizer files and never asks. With protconv
imported, or in a folder holding only the tokenizer, plain ``AutoTokenizer`` loads it silently.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ..modeling.vocabulary import (
    CLS_TOKEN,
    EOS_TOKEN,
    MASK_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    TOKEN_TO_ID,
    UNK_TOKEN,
)

#: Longest input the tokenizer claims to handle. Conv models have no position limit, so this only stops
#: transformers from warning; truncation still works when ``max_length`` is passed explicitly.
MODEL_MAX_LENGTH = 1_000_000


def _build_backend() -> Tokenizer:
    """Character-level WordLevel model: one token per residue, unknown characters become ``<unk>``."""
    backend = Tokenizer(models.WordLevel(vocab=dict(TOKEN_TO_ID), unk_token=UNK_TOKEN))
    # The Rust library has no upper-casing normaliser; one Replace per letter does the same and serialises.
    uppercase = [
        normalizers.Replace(lower, upper)
        for lower, upper in zip(string.ascii_lowercase, string.ascii_uppercase, strict=True)
    ]
    backend.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), ""), *uppercase])
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    # Special tokens are matched on the raw text, before normalisation, so "<mask>" is never upper-cased.
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return backend


def build_tokenizer(add_cls: bool = True, add_eos: bool = True) -> PreTrainedTokenizerFast:
    """Return protconv's tokenizer.

    ``add_cls``/``add_eos`` choose whether ``<cls>``/``<eos>`` frame each sequence; they are saved as the
    post-processor of ``tokenizer.json`` and restored by ``from_pretrained``.
    CARP checkpoints were trained without them: converted CARP folders set both to False.
    """
    return PreTrainedTokenizerFast(
        tokenizer_object=_build_backend(),
        bos_token=CLS_TOKEN,
        cls_token=CLS_TOKEN,
        eos_token=EOS_TOKEN,
        sep_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        mask_token=MASK_TOKEN,
        unk_token=UNK_TOKEN,
        add_bos_token=add_cls,
        add_eos_token=add_eos,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
