"""Pretraining objectives shared by every protconv model family: masked-LM, profile prediction, or both.

One place for the config fields' defaults and checks, so that every family's config accepts and rejects exactly
the same values. Lives in ``modeling/`` and imports nothing from protconv, because the configuration files that
use it ship to the Hub as remote code.

Profile prediction (Sturmfels et al. 2020, arXiv 2012.00195): every residue's target is the 20-way amino-acid
distribution of its alignment column. Multi-task training weights the two losses as
``(1 - alpha) * MLM + alpha * profile_loss_scale * KL`` with ``alpha = w / (w + 1)``, ``w = profile_task_weight``.
"""

from __future__ import annotations

import math
from typing import Any

MLM = "mlm"
PROFILE = "profile"
#: The accepted values of ``config.pretraining_objective``.
PRETRAINING_OBJECTIVES: tuple[str, ...] = (MLM, f"{MLM}+{PROFILE}", PROFILE)

#: Defaults of the paper: w = 3 (alpha = 0.75) and a factor 10 on the KL term.
DEFAULT_PROFILE_TASK_WEIGHT = 3.0
DEFAULT_PROFILE_LOSS_SCALE = 10.0
#: One class per standard amino acid, in the order of ``vocabulary.STANDARD_AMINO_ACIDS``.
DEFAULT_NUM_PROFILE_CLASSES = 20


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
