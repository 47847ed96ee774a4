"""protconv: fast, long-context protein language models as first-class Hugging Face citizens.

Importing the package registers every protconv model with the transformers Auto classes, and (when peft is
installed) its default LoRA targets with peft (``protconv.lora``); ``model.push_to_hub`` then publishes protconv's
card and the tokenizer (``protconv.hub``).
"""

from . import hub  # noqa: F401 (sets ProteinHubMixin.hub_publisher)
from .lora import register_peft_defaults
from .modeling import *  # noqa: F403 (the model families' public names, listed once in modeling/__init__.py)
from .modeling import __all__ as _model_names
from .registry import register_auto_classes
from .tokenization import InvalidSequenceError, build_tokenizer, clean_sequence

register_auto_classes()
register_peft_defaults()

__version__ = "0.1.0"

__all__ = [*_model_names, "InvalidSequenceError", "build_tokenizer", "clean_sequence"]
