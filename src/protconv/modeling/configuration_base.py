"""The fields every protconv model family shares: pooling, special-token ids, classifier dropout and the
pretraining objective, with their defaults and checks in one place so that every family accepts and rejects
exactly the same values.

Pretraining objectives (``*ForPreTraining``): ``"mlm"``, ``"profile"`` (Sturmfels et al. 2020, arXiv 2012.00195:
predict every residue's MSA-column amino-acid distribution) or both, ``"mlm+profile"``, trained on
``(1 - alpha) * MLM + alpha * profile_loss_scale * KL`` with ``alpha = w / (w + 1)``, ``w = profile_task_weight``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, get_args

from transformers import PretrainedConfig

from .auto_classes import family_auto_map
from .vocabulary import CLS_TOKEN_ID, EOS_TOKEN_ID, MASK_TOKEN_ID, NUM_AMINO_ACIDS, PAD_TOKEN_ID, VOCAB_SIZE

MLM = "mlm"
PROFILE = "profile"
#: The accepted values of ``config.pretraining_objective``: ``MLM``, both tasks, ``PROFILE``.
PretrainingObjective = Literal["mlm", "mlm+profile", "profile"]
PRETRAINING_OBJECTIVES: tuple[PretrainingObjective, ...] = get_args(PretrainingObjective)
#: Defaults of the paper: w = 3 (alpha = 0.75) and a factor 10 on the KL term.
DEFAULT_PROFILE_TASK_WEIGHT = 3.0
DEFAULT_PROFILE_LOSS_SCALE = 10.0
#: The accepted values of ``config.pooling``.
Pooling = Literal["mean", "cls"]
POOLINGS: tuple[Pooling, ...] = get_args(Pooling)


def label_count(config: PretrainedConfig) -> int:
    """``config.num_labels``, which transformers types as optional: it is ``None`` only while ``id2label`` is
    unset, and ``PretrainedConfig.__post_init__`` always sets it."""
    count = config.num_labels
    if count is None:
        raise ValueError("config.num_labels is not set (config.id2label is None)")
    return count


def objective_parts(objective: str) -> frozenset[str]:
    """The tasks an objective trains: ``"mlm+profile"`` -> ``{"mlm", "profile"}``."""
    return frozenset(objective.split("+"))


def profile_task_alpha(profile_task_weight: float) -> float:
    """``alpha = w / (w + 1)``: the share of the profile term in the multi-task loss (w = 3 gives 0.75)."""
    return profile_task_weight / (profile_task_weight + 1.0)


def _is_real_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_pretraining_fields(
    pretraining_objective: str, profile_task_weight: float, profile_loss_scale: float, num_profile_classes: int
) -> None:
    """Raise ``ValueError`` naming the field if any pretraining setting is invalid.

    Checked when the config is built, so that a typo in a config.json or on the command line fails before a
    model (and a training run) is created rather than as a shape error or a NaN loss hours later.
    """
    if pretraining_objective not in PRETRAINING_OBJECTIVES:
        raise ValueError(
            f"pretraining_objective must be one of {PRETRAINING_OBJECTIVES}, got {pretraining_objective!r}"
        )
    if not _is_real_number(profile_task_weight) or profile_task_weight < 0:
        raise ValueError(f"profile_task_weight must be a finite number >= 0, got {profile_task_weight!r}")
    if not _is_real_number(profile_loss_scale) or profile_loss_scale <= 0:
        raise ValueError(f"profile_loss_scale must be a finite number > 0, got {profile_loss_scale!r}")
    if not isinstance(num_profile_classes, int) or isinstance(num_profile_classes, bool) or num_profile_classes < 2:
        raise ValueError(f"num_profile_classes must be an integer >= 2, got {num_profile_classes!r}")


class ProteinLMConfig(PretrainedConfig):
    """Base of every family's config: the fields below, presets, and the family's ``auto_map``.

    ``pooling`` is how sequence-level heads summarise residues: ``"mean"`` over real residues (never padding or
    special tokens) or ``"cls"`` (the ``<cls>`` token; needs a tokenizer that adds it).

    Pretraining (``*ForPreTraining``): ``pretraining_objective`` is ``"mlm"``, ``"profile"`` (predict each residue's
    MSA-column amino-acid distribution, ``num_profile_classes`` = 20 in the order ``ACDEFGHIKLMNPQRSTVWY``) or
    ``"mlm+profile"``, trained on ``(1 - a) * MLM + a * profile_loss_scale * KL`` with
    ``a = profile_task_weight / (profile_task_weight + 1)`` (Sturmfels et al. 2020: weight 3, scale 10).

    A subclass sets ``family`` (the prefix of its class and file names, e.g. ``"Conv"``) and ``presets``.
    """

    family: ClassVar[str]
    presets: ClassVar[dict[str, dict[str, int]]] = {}

    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        hidden_size: int = 128,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        classifier_dropout: float = 0.1,
        pooling: str = "mean",
        pad_token_id: int = PAD_TOKEN_ID,
        mask_token_id: int = MASK_TOKEN_ID,
        cls_token_id: int = CLS_TOKEN_ID,
        eos_token_id: int = EOS_TOKEN_ID,
        pretraining_objective: str = MLM,
        profile_task_weight: float = DEFAULT_PROFILE_TASK_WEIGHT,
        profile_loss_scale: float = DEFAULT_PROFILE_LOSS_SCALE,
        num_profile_classes: int = NUM_AMINO_ACIDS,
        **kwargs: Any,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        validate_pretraining_fields(pretraining_objective, profile_task_weight, profile_loss_scale, num_profile_classes)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.classifier_dropout = classifier_dropout
        self.pooling = pooling
        self.pretraining_objective = pretraining_objective
        self.profile_task_weight = profile_task_weight
        self.profile_loss_scale = profile_loss_scale
        self.num_profile_classes = num_profile_classes
        self.mask_token_id = mask_token_id
        self.cls_token_id = cls_token_id
        kwargs.setdefault("auto_map", family_auto_map(self.family))
        kwargs.setdefault("bos_token_id", cls_token_id)  # <cls> opens sequences; Trainer checks it matches
        # Through the dict: transformers types ``__init__`` by its dataclass fields, which the token ids are not.
        super().__init__(**{"pad_token_id": pad_token_id, "eos_token_id": eos_token_id, **kwargs})

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ProteinLMConfig:
        """Config of a named size (``cls.presets``), with ``overrides`` on top."""
        if name not in cls.presets:
            raise ValueError(f"unknown {cls.family} preset {name!r}; choose one of {sorted(cls.presets)}")
        return cls(**{**cls.presets[name], **overrides})
