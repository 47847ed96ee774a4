"""Pretrain a protconv masked language model.

    accelerate launch examples/pretrain.py --config examples/configs/carp-600k.yaml [--flag value ...]

Thin on purpose: the loop lives in ``protconv.pretraining``; this is ``protconv pretrain`` (same arguments, same
one-line errors and exit codes; PROTCONV_DEBUG=1 shows tracebacks).
"""

from __future__ import annotations

import sys

from protconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
