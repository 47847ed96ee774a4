"""Pretrain a protconv masked language model.

    accelerate launch examples/pretrain.py --config examples/configs/carp-600k.yaml [--flag value ...]

Thin on purpose: the loop lives in ``protconv.pretraining``; ``protconv pretrain`` runs the same thing.
"""

from __future__ import annotations

from accelerate import PartialState

from protconv.pretraining import parse_arguments, pretrain

if __name__ == "__main__":
    result = pretrain(*parse_arguments())
    if result.model_dir is not None and PartialState().is_main_process:
        print(f"model saved to {result.model_dir}")
