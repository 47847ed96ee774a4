"""``push_to_hub`` that publishes a protconv model whole: card, tokenizer and code with the weights.

transformers' ``push_to_hub`` uploads a generic card and no tokenizer. This file ships to the Hub with the
modeling code and may import nothing from protconv, so the publisher is plugged in from outside: importing
protconv sets ``ProteinHubMixin.hub_publisher`` (``protconv.hub.push_model``). Where protconv is not installed
(a model loaded with ``trust_remote_code``), it stays unset and transformers' own ``push_to_hub`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar


class ProteinHubMixin:
    """Placed before ``PreTrainedModel`` in the bases of every family's pretrained-model class."""

    hub_publisher: ClassVar[Callable[..., str] | None] = None

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to ``repo_id``. With protconv installed, also the tokenizer (``tokenizer=``, default: the one
        of the folder the model came from) and protconv's model card (``card=``, default: that folder's)."""
        publisher = ProteinHubMixin.hub_publisher
        if publisher is None:
            return super().push_to_hub(repo_id, **kwargs)  # type: ignore[misc]
        return publisher(self, repo_id, **kwargs)
