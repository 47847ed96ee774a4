"""Output heads, pooling and losses shared by every protconv model family.

Imported by the model files as a sibling module (``from .heads import ...``) so that it ships with them to the
Hub as remote code.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

IGNORE_INDEX = -100


def residue_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """True at real residues: attended positions that are not ``<pad>``, ``<cls>`` or ``<eos>``.

    Pooling over this mask makes a protein's embedding independent of batch padding and of whether the
    tokenizer framed it with special tokens.
    """
    special = torch.tensor([config.pad_token_id, config.cls_token_id, config.eos_token_id], device=input_ids.device)
    return attention_mask.bool() & ~torch.isin(input_ids, special)


def pool(
    hidden_states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, config: PretrainedConfig
) -> torch.Tensor:
    """One vector per sequence: mean over real residues (``config.pooling == "mean"``) or the ``<cls>`` state."""
    if config.pooling == "cls":
        has_cls = input_ids[:, 0] == config.cls_token_id
        if not bool(has_cls.all()):
            rows = torch.nonzero(~has_cls).flatten().tolist()
            raise ValueError(f"pooling='cls' needs <cls> at position 0; batch rows {rows} lack it")
        return hidden_states[:, 0]
    mask = residue_mask(input_ids, attention_mask, config)
    counts = mask.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        rows = torch.nonzero(counts.squeeze(1) == 0).flatten().tolist()
        raise ValueError(f"mean pooling: batch rows {rows} contain no residue (only padding/special tokens)")
    weights = mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * weights).sum(dim=1) / counts.to(hidden_states.dtype)


class SequenceClassificationHead(nn.Module):
    """Dropout -> dense -> tanh -> dropout -> projection on the pooled vector (the head of BERT/ESM)."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(hidden))


class TokenClassificationHead(nn.Module):
    """Dropout -> projection at every position (per-residue labels such as secondary structure)."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(hidden_states))


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: PretrainedConfig) -> torch.Tensor:
    """Regression (MSE) when ``num_labels == 1``; cross-entropy for integer labels; BCE for multi-hot labels.

    The inferred ``problem_type`` is stored in the config, as transformers models do, so it is saved.
    """
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    if config.problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ValueError(f"unsupported problem_type {config.problem_type!r}")


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over positions whose label is not -100 (padding, special tokens, masked residues)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def backbone_output(
    final_norm: nn.Module,
    hidden: torch.Tensor,
    all_hidden: list[torch.Tensor] | None,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    config: PretrainedConfig,
    pool_output: bool,
    return_dict: bool | None,
) -> BaseModelOutputWithPooling | tuple:
    """The common end of every backbone: final LayerNorm, optional pooling, the standard output dataclass."""
    last = final_norm(hidden)
    output = BaseModelOutputWithPooling(
        last_hidden_state=last,
        pooler_output=pool(last, input_ids, attention_mask, config) if pool_output else None,
        hidden_states=tuple(all_hidden) if all_hidden is not None else None,
    )
    return output if return_dict is not False else output.to_tuple()


class _TaskModelMixin:
    """Builds a family's backbone (stored under ``base_model_prefix``) plus the head a task mixin adds.

    Every family shares these task models; a family names its backbone in ``backbone_class`` and mixes a task
    mixin in before its ``PreTrainedModel`` base, e.g. ``class ConvForMaskedLM(MaskedLMModelMixin,
    ConvPreTrainedModel)``.
    """

    backbone_class: type[nn.Module]

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        setattr(self, self.base_model_prefix, self.backbone_class(config))
        self._add_head(config)
        self.post_init()

    def _add_head(self, config: PretrainedConfig) -> None:
        raise NotImplementedError


class MaskedLMModelMixin(_TaskModelMixin):
    """A family's masked-LM model: its backbone and an untied linear decoder."""

    def _add_head(self, config: PretrainedConfig) -> None:
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        """``labels``: target token ids at masked positions, -100 elsewhere (loss is over masked positions only)."""
        base = self.base_model(input_ids, attention_mask, output_hidden_states=output_hidden_states, pool_output=False)
        logits = self.lm_head(base.last_hidden_state)
        loss = token_loss(logits, labels) if labels is not None else None
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return output if return_dict is not False else output.to_tuple()


class SequenceClassificationModelMixin(_TaskModelMixin):
    """One prediction per protein from the pooled residues: regression when ``num_labels == 1``, otherwise
    single-label (integer labels) or multi-label (multi-hot float labels) classification."""

    def _add_head(self, config: PretrainedConfig) -> None:
        self.classifier = SequenceClassificationHead(config)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        base = self.base_model(input_ids, attention_mask, output_hidden_states=output_hidden_states)
        logits = self.classifier(base.pooler_output)
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return output if return_dict is not False else output.to_tuple()


class TokenClassificationModelMixin(_TaskModelMixin):
    """One prediction per position (per-residue labels; -100 marks positions without a label)."""

    def _add_head(self, config: PretrainedConfig) -> None:
        self.classifier = TokenClassificationHead(config)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        base = self.base_model(input_ids, attention_mask, output_hidden_states=output_hidden_states, pool_output=False)
        logits = self.classifier(base.last_hidden_state)
        loss = token_loss(logits, labels) if labels is not None else None
        output = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return output if return_dict is not False else output.to_tuple()
