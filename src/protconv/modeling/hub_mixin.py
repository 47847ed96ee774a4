"""``push_to_hub`` that publishes a protconv model whole: card, tokenizer and code with the weights.

transformers' ``push_to_hub`` uploads a generic card and no tokenizer. This file ships to the Hub with the
modeling code and may import nothing from protconv, so the publisher is plugged in from outside: importing
protconv sets ``ProteinHubMixin.hub_publisher`` (``protconv.hub.push_model``). Where protconv is not installed
(a model loaded with ``trust_remote_code``), it stays unset and transformers' own ``push_to_hub`` runs.
"""

from __future__ import annotations

import os
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

    #: transformers' save_pretrained keywords that only steer its push; protconv's publisher takes these.
    _PUSH_KEYWORDS: ClassVar[tuple[str, ...]] = ("commit_message", "private", "create_pr", "revision")

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """``save_pretrained``; with ``push_to_hub=True`` and protconv installed, the upload is protconv's
        ``push_to_hub`` (card and tokenizer too) to ``repo_id`` (default: the folder's name), not transformers'."""
        publisher = ProteinHubMixin.hub_publisher
        if not kwargs.get("push_to_hub") or publisher is None:
            return super().save_pretrained(save_directory, *args, **kwargs)
        kwargs.pop("push_to_hub")
        repo_id = kwargs.pop("repo_id", None) or os.path.basename(os.path.normpath(save_directory))
        push = {key: kwargs.pop(key) for key in self._PUSH_KEYWORDS if key in kwargs}
        if isinstance(kwargs.get("token"), str):
            push["token"] = kwargs["token"]
        super().save_pretrained(save_directory, *args, **kwargs)
        publisher(self, repo_id, **push)
        return None
