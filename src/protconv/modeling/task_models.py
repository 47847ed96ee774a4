"""The task models every family shares: masked LM, pretraining (MLM and/or profile), sequence and token
classification.

Each mixin adds a head (``_build_heads``) and the ``forward`` that wires the head to the backbone. A family
combines each mixin with its own task base class, which declares the backbone attribute explicitly (as
transformers' ESM does), e.g. in ``modeling_conv.py``::

    class ConvTaskModel(ConvPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.conv = ConvModel(config, add_pooling_layer=self.uses_pooled_output)
            self._build_heads(config)
            self.post_init()

    class ConvForMaskedLM(MaskedLMMixin, ConvTaskModel): ...

``forward`` reads the backbone through ``self.base_model`` (transformers' alias of ``base_model_prefix``).

Every ``forward`` names each argument it accepts, so that a misspelt or unsupported one raises ``TypeError``
rather than vanishing into ``**kwargs``. Beyond the inputs and targets these are the ones Trainer, pipelines and
peft's wrappers pass: ``output_hidden_states``, ``return_dict``, ``output_attentions`` (exact-softmax Performer
only; the others raise on ``True``), ``inputs_embeds`` (must be ``None``) and ``num_items_in_batch``. The last is
ignored: the losses are per-batch means, and the models set ``accepts_loss_kwargs = False`` so that Trainer
averages gradient-accumulation steps itself rather than passing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import ModelOutput, logging

from .configuration_base import MLM, PROFILE, objective_parts
from .heads import ProfileHead, SequenceClassificationHead, TokenClassificationHead, lm_head
from .losses import objective_loss, profile_kl_loss, sequence_classification_loss, token_loss
from .outputs import ProteinPreTrainingOutput

logger = logging.get_logger(__name__)


class TaskMixin:
    """What a family's task base class needs from a task: its heads, and whether it reads the pooled vector.

    The family's ``PreTrainedModel`` provides ``config`` and ``base_model``; they are declared here, with
    transformers' own types, so that the mixins' methods are checked against them.
    """

    #: True when the head reads ``pooler_output``; the backbone skips pooling otherwise.
    uses_pooled_output: ClassVar[bool] = False
    config: PretrainedConfig
    if TYPE_CHECKING:  # a property at run time would shadow PreTrainedModel's

        @property
        def base_model(self) -> nn.Module: ...

    def _build_heads(self, config: PretrainedConfig) -> None:
        raise NotImplementedError

    def _backbone(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        output_hidden_states: bool | None,
        output_attentions: bool | None,
        inputs_embeds: torch.Tensor | None,
    ) -> BaseModelOutputWithPooling:
        """The backbone's output for a task forward (every head reads it the same way)."""
        return self.base_model(
            input_ids,
            attention_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            inputs_embeds=inputs_embeds,
        )


class _SingleHeadMixin(TaskMixin):
    """A task with one head and one loss: the head reads the pooled vector (``uses_pooled_output``) or every
    position, and ``labels`` give the loss. Subclasses build the head and name the output class; the head is
    ``self.classifier`` and the loss the per-position cross-entropy unless they say otherwise."""

    output_class: ClassVar[type]
    #: Built by ``_build_heads`` (the masked LM's head is ``lm_head``: it overrides ``_head``).
    classifier: nn.Module

    def _head(self) -> nn.Module:
        return self.classifier

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return token_loss(logits, labels)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> ModelOutput | tuple:
        """``labels``: see the task's class documentation; -100 marks positions without a label. The other
        arguments: see the module notes."""
        base = self._backbone(input_ids, attention_mask, output_hidden_states, output_attentions, inputs_embeds)
        logits = self._head()(base.pooler_output if self.uses_pooled_output else base.last_hidden_state)
        loss = self._loss(logits, labels) if labels is not None else None
        output = self.output_class(
            loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions
        )
        return output if return_dict is not False else output.to_tuple()


class _LanguageModelDecoderMixin:
    """``get/set_output_embeddings`` for models whose decoder is ``lm_head`` (resizing, fill-mask pipelines)."""

    #: ``None`` in a pretraining model whose objective has no MLM task.
    lm_head: nn.Linear | None

    def get_output_embeddings(self) -> nn.Linear | None:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value


class MaskedLMMixin(_LanguageModelDecoderMixin, _SingleHeadMixin):
    """Masked LM: the backbone and an untied linear decoder (``lm_head``). ``labels``: target token ids at masked
    positions, -100 elsewhere (the loss is over masked positions only)."""

    output_class = MaskedLMOutput
    lm_head: nn.Linear

    def _build_heads(self, config: PretrainedConfig) -> None:
        self.lm_head = lm_head(config)

    def _head(self) -> nn.Module:
        return self.lm_head


class SequenceClassificationMixin(_SingleHeadMixin):
    """One prediction per protein from the pooled residues: regression when ``num_labels == 1``, otherwise
    single-label (integer labels) or multi-label (multi-hot float labels) classification."""

    uses_pooled_output = True
    output_class = SequenceClassifierOutput

    def _build_heads(self, config: PretrainedConfig) -> None:
        self.classifier = SequenceClassificationHead(config)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sequence_classification_loss(logits, labels, self.config)


class TokenClassificationMixin(_SingleHeadMixin):
    """One prediction per position (per-residue labels; -100 marks positions without a label)."""

    output_class = TokenClassifierOutput

    def _build_heads(self, config: PretrainedConfig) -> None:
        self.classifier = TokenClassificationHead(config)


class PreTrainingMixin(_LanguageModelDecoderMixin, TaskMixin):
    """Pretraining: masked-LM, profile prediction or both, by ``config.pretraining_objective``.

    The MLM decoder is ``lm_head`` with the shape of ``MaskedLMMixin``'s, so an ``"mlm"`` or ``"mlm+profile"``
    checkpoint loads into ``AutoModelForMaskedLM`` (and fill-mask) unchanged; the profile head is
    ``profile_head``. A head the objective does not need is not built (the attribute is ``None``), so it neither
    takes memory nor sits unused in DDP.
    """

    def _build_heads(self, config: PretrainedConfig) -> None:
        parts = objective_parts(config.pretraining_objective)
        self.lm_head = lm_head(config) if MLM in parts else None
        self.profile_head = ProfileHead(config) if PROFILE in parts else None

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        profile_targets: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
        inputs_embeds: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> ProteinPreTrainingOutput | tuple:
        """Heads' logits and, given targets, the losses.

        ``labels``: MLM target ids at masked positions, -100 elsewhere (as ``MaskedLMMixin``).
        ``profile_targets``: float ``(batch, length, num_profile_classes)`` aligned with ``input_ids``; all-zero
        rows are ignored (see ``losses.profile_kl_sums``).

        ``loss`` is ``mlm_loss`` for ``"mlm"``, ``profile_loss`` for ``"profile"`` and
        ``(1 - alpha) * mlm_loss + alpha * profile_loss_scale * profile_loss`` for ``"mlm+profile"``. In
        multi-task mode with only one kind of target, ``loss`` is that term's weighted part alone, so a batch
        contributes on the same scale whichever targets it carries; the other head then gets no gradient, which
        DDP without ``find_unused_parameters`` rejects, so under DDP pass all-zero ``profile_targets`` for
        sequences without a profile instead of omitting them. Targets for a task the objective lacks are
        ignored (with a one-time warning): a collator may produce both whatever the model trains on.
        With ``return_dict=False`` the tuple holds the non-``None`` fields in order. The other arguments: see the
        module notes.
        """
        base = self._backbone(input_ids, attention_mask, output_hidden_states, output_attentions, inputs_embeds)
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
            attentions=base.attentions,
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
