"""The tiny saved model of the inference tests, for the maps drawn from its embeddings."""

from tests.inference.conftest import conv_folder  # noqa: F401
