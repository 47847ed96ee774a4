"""Output heads, pooling and losses shared by every protconv model family.

Imported by the model files as a sibling module (``from .heads import ...``) so that it ships with them to the
Hub as remote code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
from transformers.utils import ModelOutput, logging

from .objectives import MLM, PROFILE, objective_parts, profile_task_alpha

logger = logging.get_logger(__name__)

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


class ProfileHead(nn.Module):
    """Dense -> GELU -> LayerNorm -> projection to ``num_profile_classes`` logits at every position.

    The head of Sturmfels et al. (2020) for predicting each residue's alignment-column amino-acid distribution;
    the same shape as an MLM decoder's transform, so it reads the backbone's output like the LM head does.
    """

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.out_proj = nn.Linear(config.hidden_size, config.num_profile_classes)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.layer_norm(F.gelu(self.dense(hidden_states))))


def profile_kl_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over valid positions of KL(target || softmax(logits)) = sum_c t_c (log t_c - log_softmax(logits)_c).

    ``targets`` has the shape of ``logits`` (batch, length, classes) and holds a distribution per position. A
    position is valid iff its target row sums to more than 0: an all-zero row means "no target" (padding,
    special tokens, insert residues masked out), so collators mark ignored positions with zeros rather than a
    separate mask. ``0 * log 0`` is taken as 0, so one-hot and sparse targets are fine. Rows are neither
    renormalised nor checked to sum to 1 (that would cost a host synchronisation per step).

    Computed in float32 whatever the logits' dtype (half-precision log-probabilities lose the small target
    entries). The mean is over valid positions of the whole batch, as ``token_loss`` averages over labelled
    tokens. A batch without a valid position gives a loss of exactly 0 that is still connected to ``logits``
    (zero gradients, but a ``grad_fn``), so that ``backward()`` works and DDP/accelerate, which expect every
    parameter of the head to take part in every step, do not fail or hang.
    """
    if targets.shape != logits.shape:
        raise ValueError(
            f"profile_targets shape {tuple(targets.shape)} does not match profile logits shape "
            f"{tuple(logits.shape)}: expected (batch, length, num_profile_classes), aligned with input_ids"
        )
    log_probs = F.log_softmax(logits.float(), dim=-1)
    targets = targets.float()
    per_position = (torch.special.xlogy(targets, targets) - targets * log_probs).sum(dim=-1)
    valid = targets.sum(dim=-1) > 0
    # No boolean indexing: no host synchronisation, and an empty selection still yields a graph-connected zero.
    total = torch.where(valid, per_position, torch.zeros_like(per_position)).sum()
    return total / valid.sum().clamp(min=1)


def multitask_loss(
    config: PretrainedConfig, mlm_loss: torch.Tensor | None, profile_loss: torch.Tensor | None
) -> torch.Tensor | None:
    """``(1 - alpha) * mlm_loss + alpha * profile_loss_scale * profile_loss``, ``alpha = w / (w + 1)``; a missing
    term is left out (not renormalised), so a batch weighs the same whichever targets it carries.

    The one place the weighting lives: the pretraining models and the pretraining loop both call it with each
    micro-batch's own token means (as transformers' models do); accumulation and data parallelism then average
    micro-batches equally, so a micro-batch with few profile positions weighs as much as a full one.
    """
    alpha = profile_task_alpha(config.profile_task_weight)
    terms = []
    if mlm_loss is not None:
        terms.append((1.0 - alpha) * mlm_loss)
    if profile_loss is not None:
        terms.append(alpha * config.profile_loss_scale * profile_loss)
    return torch.stack(terms).sum() if terms else None


def objective_loss(
    config: PretrainedConfig, mlm_loss: torch.Tensor | None, profile_loss: torch.Tensor | None
) -> torch.Tensor | None:
    """The loss of ``config.pretraining_objective``: ``multitask_loss`` for ``"mlm+profile"``, otherwise the one
    task's own (unweighted) loss."""
    if len(objective_parts(config.pretraining_objective)) > 1:
        return multitask_loss(config, mlm_loss, profile_loss)
    return mlm_loss if mlm_loss is not None else profile_loss


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


@dataclass
class ProteinPreTrainingOutput(ModelOutput):
    """Output of the ``*ForPreTraining`` models.

    Args:
        loss: The training objective: the weighted multi-task sum for ``"mlm+profile"`` (see
            ``PreTrainingModelMixin.forward``), otherwise the single task's loss. ``None`` without targets.
        mlm_loss: Unweighted masked-LM cross-entropy over labelled positions, when ``labels`` were given.
        profile_loss: Unweighted KL(target || prediction) over valid positions, when ``profile_targets`` were
            given.
        logits: MLM logits ``(batch, length, vocab_size)``; ``None`` for the ``"profile"`` objective.
        profile_logits: Profile logits ``(batch, length, num_profile_classes)``; ``None`` for ``"mlm"``.
        hidden_states: Embedding output and every layer's output, with ``output_hidden_states=True``.
    """

    loss: torch.FloatTensor | None = None
    mlm_loss: torch.FloatTensor | None = None
    profile_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    profile_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class PreTrainingModelMixin(_TaskModelMixin):
    """A family's pretraining model: masked-LM, profile prediction or both, by ``config.pretraining_objective``.

    The MLM decoder is ``lm_head`` with the shape of ``MaskedLMModelMixin``'s, so an ``"mlm"`` or
    ``"mlm+profile"`` checkpoint loads into ``AutoModelForMaskedLM`` (and fill-mask) unchanged; the profile head
    is ``profile_head``. A head the objective does not need is not built (the attribute is ``None``), so it
    neither takes memory nor sits unused in DDP.
    """

    def _add_head(self, config: PretrainedConfig) -> None:
        parts = objective_parts(config.pretraining_objective)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size) if MLM in parts else None
        self.profile_head = ProfileHead(config) if PROFILE in parts else None

    def get_output_embeddings(self) -> nn.Linear | None:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        profile_targets: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ProteinPreTrainingOutput | tuple:
        """Heads' logits and, given targets, the losses.

        ``labels``: MLM target ids at masked positions, -100 elsewhere (as ``MaskedLMModelMixin``).
        ``profile_targets``: float ``(batch, length, num_profile_classes)`` aligned with ``input_ids``; all-zero
        rows are ignored (see ``profile_kl_loss``).

        ``loss`` is ``mlm_loss`` for ``"mlm"``, ``profile_loss`` for ``"profile"`` and
        ``(1 - alpha) * mlm_loss + alpha * profile_loss_scale * profile_loss`` for ``"mlm+profile"``. In
        multi-task mode with only one kind of target, ``loss`` is that term's weighted part alone, so a batch
        contributes on the same scale whichever targets it carries; the other head then gets no gradient, which
        DDP without ``find_unused_parameters`` rejects, so under DDP pass all-zero ``profile_targets`` for
        sequences without a profile instead of omitting them. Targets for a task the objective lacks are
        ignored (with a one-time warning): a collator may produce both whatever the model trains on.
        With ``return_dict=False`` the tuple holds the non-``None`` fields in order.
        """
        base = self.base_model(input_ids, attention_mask, output_hidden_states=output_hidden_states, pool_output=False)
        hidden = base.last_hidden_state
        logits = self.lm_head(hidden) if self.lm_head is not None else None
        profile_logits = self.profile_head(hidden) if self.profile_head is not None else None
        mlm_loss = self._task_loss(logits, labels, token_loss, "labels", MLM)
        profile_loss = self._task_loss(profile_logits, profile_targets, profile_kl_loss, "profile_targets", PROFILE)
        output = ProteinPreTrainingOutput(
            loss=objective_loss(self.config, mlm_loss, profile_loss),
            mlm_loss=mlm_loss,
            profile_loss=profile_loss,
            logits=logits,
            profile_logits=profile_logits,
            hidden_states=base.hidden_states,
        )
        return output if return_dict is not False else output.to_tuple()

    def _task_loss(
        self,
        logits: torch.Tensor | None,
        targets: torch.Tensor | None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        targets_name: str,
        task: str,
    ) -> torch.Tensor | None:
        """``loss_fn(logits, targets)``, or ``None`` without targets or without the task's head."""
        if targets is None:
            return None
        if logits is None:
            logger.warning_once(
                f"{targets_name} given but pretraining_objective={self.config.pretraining_objective!r} has no "
                f"{task!r} task: they are ignored"
            )
            return None
        return loss_fn(logits, targets)


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
