"""``push_to_hub`` that publishes a protconv model whole: card, tokenizer and code with the weights.

transformers' ``push_to_hub`` uploads a generic card and no tokenizer. This file ships to the Hub with the
modeling code and may import nothing from protconv, so the publisher is plugged in from outside: importing
protconv sets ``ProteinHubMixin.hub_publisher`` (``protconv.hub.push_model``). Where protconv is not installed
(a model loaded with ``trust_remote_code``), it stays unset and transformers' own ``push_to_hub`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from transformers import PreTrainedModel


class ProteinHubMixin(PreTrainedModel):
    """The ``PreTrainedModel`` every family's pretrained-model class derives from (the class order is that of a
    mixin placed before ``PreTrainedModel``). A subclass rather than a mixin so that its ``push_to_hub`` is an
    override of one method, checked once, not a second definition beside transformers' in every model class."""

    hub_publisher: ClassVar[Callable[..., str] | None] = None

    # transformers decorates its push_to_hub with functools.wraps, which typeshed types as a ``_Wrapped`` object
    # that no method signature can match: a third-party typing gap, not a different signature.
    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:  # type: ignore[override]
        """Upload to ``repo_id``. With protconv installed, also the tokenizer (``tokenizer=``, default: the one
        of the folder the model came from) and protconv's model card (``card=``, default: that folder's)."""
        publisher = ProteinHubMixin.hub_publisher
        if publisher is None:
            return super().push_to_hub(repo_id, **kwargs)  # type: ignore[arg-type]  # the same _Wrapped gap
        return publisher(self, repo_id, **kwargs)
