"""The one amino-acid vocabulary shared by every protconv model, tokenizer, reader and loss.

Every token constant lives here, with ``IGNORE_INDEX`` (the label of positions without a target) and the 20
standard amino acids that profiles and baselines count. It lives inside ``modeling/`` because the model files
ship to the Hub as remote code and must know the special token ids without importing protconv; the tokenizer,
the data readers and the downstream code build on this module.
"""

from __future__ import annotations

PAD_TOKEN = "<pad>"
MASK_TOKEN = "<mask>"
CLS_TOKEN = "<cls>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, MASK_TOKEN, CLS_TOKEN, EOS_TOKEN, UNK_TOKEN)

STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: The classes of a profile target (one per standard amino acid, in ``STANDARD_AMINO_ACIDS`` order).
NUM_AMINO_ACIDS = len(STANDARD_AMINO_ACIDS)
# B (D/N), Z (E/Q), X (any), J (I/L), O (pyrrolysine), U (selenocysteine): the IUPAC extended letters.
EXTENDED_AMINO_ACIDS = "BZXJOU"
GAP = "-"
STOP = "*"
RESIDUE_CHARACTERS = STANDARD_AMINO_ACIDS + EXTENDED_AMINO_ACIDS + GAP + STOP

TOKENS: tuple[str, ...] = SPECIAL_TOKENS + tuple(RESIDUE_CHARACTERS)
TOKEN_TO_ID: dict[str, int] = {token: index for index, token in enumerate(TOKENS)}
VOCAB_SIZE = len(TOKENS)

PAD_TOKEN_ID = TOKEN_TO_ID[PAD_TOKEN]
MASK_TOKEN_ID = TOKEN_TO_ID[MASK_TOKEN]
CLS_TOKEN_ID = TOKEN_TO_ID[CLS_TOKEN]
EOS_TOKEN_ID = TOKEN_TO_ID[EOS_TOKEN]

#: Label of a position without a target (padding, special tokens, unmasked residues): PyTorch's and
#: transformers' convention, skipped by every loss and metric.
IGNORE_INDEX = -100
