"""Configuration of the dilated-CNN (ByteNet) protein language model of CARP (Yang, Fusi, Lu 2022)."""

from __future__ import annotations

from typing import Any

from .configuration_base import ProteinLMConfig

#: The four published CARP models (Zenodo record 6564798). ``intermediate_size`` is CARP's d_h ("slim" blocks
#: halve d_model; carp-640m is not slim).
CONV_PRESETS: dict[str, dict[str, int]] = {
    "carp-600k": {"hidden_size": 128, "intermediate_size": 64, "num_hidden_layers": 16},
    "carp-38m": {"hidden_size": 1024, "intermediate_size": 512, "num_hidden_layers": 16},
    "carp-76m": {"hidden_size": 1024, "intermediate_size": 512, "num_hidden_layers": 32},
    "carp-640m": {"hidden_size": 1280, "intermediate_size": 1280, "num_hidden_layers": 56},
}


class ConvConfig(ProteinLMConfig):
    """Hyper-parameters of ``ConvModel`` and its heads.

    Names follow transformers conventions; CARP's names are given for conversion: ``embedding_size`` = d_embed,
    ``hidden_size`` = d_model, ``intermediate_size`` = d_h, ``max_dilation`` = r (dilations 1, 2, ..., r repeat
    through the layers), ``hidden_act`` = activation.

    Pooling, token ids and the pretraining objective are the fields of ``ProteinLMConfig``, shared by every family.
    """

    model_type = "protconv_conv"
    family = "Conv"
    presets = CONV_PRESETS

    def __init__(
        self,
        embedding_size: int = 8,
        intermediate_size: int = 64,
        num_hidden_layers: int = 16,
        kernel_size: int = 5,
        max_dilation: int = 128,
        **kwargs: Any,
    ) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so that 'same' padding is symmetric, got {kernel_size}")
        if max_dilation < 1 or max_dilation & (max_dilation - 1):
            raise ValueError(f"max_dilation must be a power of two, got {max_dilation}")
        self.embedding_size = embedding_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.kernel_size = kernel_size
        self.max_dilation = max_dilation
        super().__init__(**kwargs)

    @property
    def dilations(self) -> list[int]:
        """Dilation of each block: 1, 2, 4, ..., max_dilation, then again from 1 (CARP's 2**(i % (log2 r + 1)))."""
        cycle = self.max_dilation.bit_length()
        return [2 ** (layer % cycle) for layer in range(self.num_hidden_layers)]
