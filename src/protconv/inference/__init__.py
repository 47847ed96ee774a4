"""Use protconv models on real proteins: embeddings (``embed``), zero-shot variant scores (``score``) and
fine-tuned predictions (``predict``), as functions and as the ``protconv`` subcommands of :mod:`.commands`.

All three load a model folder or Hub id with the transformers Auto classes (and the folder's own tokenizer),
validate their whole input before loading the model, and run whole sequences in token-budget batches.
"""

from .commands import add_embed_command, add_predict_command, add_score_command
from .common import InferenceInputError, plan_batches
from .embed import EmbeddingFileError, EmbedResult, embed
from .predict import PredictResult, predict
from .score import ScoreResult, parse_mutant, score

__all__ = [
    "EmbedResult",
    "EmbeddingFileError",
    "InferenceInputError",
    "PredictResult",
    "ScoreResult",
    "add_embed_command",
    "add_predict_command",
    "add_score_command",
    "embed",
    "parse_mutant",
    "plan_batches",
    "predict",
    "score",
]
