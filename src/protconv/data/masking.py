"""BERT-style masked-language-model batches for proteins, with per-residue profile targets when pretraining on MSAs.

transformers' ``DataCollatorForLanguageModeling`` draws its random replacements from the whole vocabulary,
special tokens included; here they come from the 20 standard amino acids only, and special tokens, padding and
``<unk>`` are never chosen. Encoding goes through :class:`protconv.tokenization.encoding.SequenceEncoder`, whose
byte table and framing are read off the tokenizer (so the tokenizer stays the one source of truth), because the
Rust tokenizer costs tens of milliseconds per batch of residues the FASTA reader has already validated, which
would be a visible share of a training step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..modeling.vocabulary import IGNORE_INDEX, NUM_AMINO_ACIDS, STANDARD_AMINO_ACIDS
from ..tokenization.encoding import SequenceEncoder
from .batching import Batch
from .msa_corpus import ProfiledSequence


class MaskedLMCollator:
    """Turns a ``Batch`` into ``input_ids``, ``attention_mask`` and ``labels`` (-100 where no loss is taken).

    Of the residues, ``mlm_probability`` are selected; of those, ``mask_fraction`` become ``<mask>``,
    ``random_fraction`` a random amino acid, the rest stay unchanged (BERT: 15%, 80/10/10).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        mlm_probability: float = 0.15,
        mask_fraction: float = 0.8,
        random_fraction: float = 0.1,
    ) -> None:
        if not 0 < mlm_probability < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}")
        if mask_fraction < 0 or random_fraction < 0 or mask_fraction + random_fraction > 1:
            raise ValueError(
                f"mask_fraction + random_fraction must be within [0, 1], got {mask_fraction}, {random_fraction}"
            )
        self.mlm_probability = mlm_probability
        self.mask_fraction = mask_fraction
        self.random_fraction = random_fraction
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.amino_acid_ids = torch.tensor(tokenizer.convert_tokens_to_ids(list(STANDARD_AMINO_ACIDS)))
        self.encoder = SequenceEncoder(tokenizer)

    @property
    def special_tokens_per_sequence(self) -> int:
        """How many tokens the tokenizer adds around each sequence (``<cls>``/``<eos>``)."""
        return self.encoder.special_tokens

    def encode(self, sequences: Sequence[str | ProfiledSequence]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask``, framed exactly as the tokenizer frames them.

        A tokenizer the encoder's table cannot reproduce is used as it is (same ids, slower); with one it can, a
        character outside the table is an error rather than a silent trip through ``<unk>``."""
        texts = [str(sequence) for sequence in sequences]  # a ProfiledSequence's residues
        if not self.encoder.fast:
            encoded = self.encoder(texts)
            return encoded["input_ids"], encoded["attention_mask"]
        table = self.encoder.encode_table(texts)
        if table is None:
            raise ValueError("sequence holds a character outside the vocabulary; read it through read_fasta first")
        return table

    def mask(self, input_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked inputs and labels; the original ``input_ids`` are left untouched."""
        maskable = ~torch.isin(input_ids, self.special_ids)
        selected = (torch.rand(input_ids.shape, generator=generator) < self.mlm_probability) & maskable
        labels = torch.where(selected, input_ids, IGNORE_INDEX)
        action = torch.rand(input_ids.shape, generator=generator)
        to_mask = selected & (action < self.mask_fraction)
        to_random = selected & (action >= self.mask_fraction) & (action < self.mask_fraction + self.random_fraction)
        choices = torch.randint(len(self.amino_acid_ids), input_ids.shape, generator=generator)
        masked = torch.where(to_mask, self.mask_token_id, input_ids)
        masked = torch.where(to_random, self.amino_acid_ids[choices], masked)
        return masked, labels

    def __call__(self, batch: Batch, seed: int) -> dict[str, torch.Tensor]:
        """Encode and mask ``batch`` with randomness fixed by ``seed`` (so a resumed run masks identically)."""
        input_ids, attention_mask = self.encode(batch.sequences)
        masked, labels = self.mask(input_ids, torch.Generator().manual_seed(seed))
        if batch.filler:
            labels.fill_(IGNORE_INDEX)
        return {"input_ids": masked, "attention_mask": attention_mask, "labels": labels}


class PretrainingCollator(MaskedLMCollator):
    """Batches for any pretraining objective: masked-LM inputs/labels and/or per-residue profile targets.

    ``mlm=False`` (profile-only pretraining) leaves the input unmasked and produces no ``labels``.
    ``profile=True`` adds ``profile_targets`` (batch, width, 20) aligned with ``input_ids``: each residue of a
    ``ProfiledSequence`` carries its column's distribution; special tokens, padding, plain-string sequences
    (proteins without an alignment) and filler batches get all-zero rows, which the loss ignores. Dynamic
    masking applies on top: a masked residue keeps its profile target.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, mlm: bool = True, profile: bool = False, **masking) -> None:
        if not (mlm or profile):
            raise ValueError("a pretraining collator needs at least one of mlm and profile")
        super().__init__(tokenizer, **masking)
        self.mlm = mlm
        self.profile = profile

    def __call__(self, batch: Batch, seed: int) -> dict[str, torch.Tensor]:
        if self.mlm:
            tensors = super().__call__(batch, seed)
        else:
            input_ids, attention_mask = self.encode(batch.sequences)
            tensors = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.profile:
            tensors["profile_targets"] = self.profile_targets(batch, tensors["input_ids"].shape[1])
        return tensors

    def profile_targets(self, batch: Batch, width: int) -> torch.Tensor:
        targets = np.zeros((len(batch.sequences), width, NUM_AMINO_ACIDS), dtype=np.float32)
        if not batch.filler:
            start = self.encoder.framing.prefix
            for row, sequence in enumerate(batch.sequences):
                if isinstance(sequence, ProfiledSequence):
                    targets[row, start : start + len(sequence)] = sequence.targets()
        return torch.from_numpy(targets)
