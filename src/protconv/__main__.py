"""``python -m protconv``: the ``protconv`` command, so that launchers that start a module run it on N processes
(``torchrun --nproc-per-node N -m protconv embed ...``, ``accelerate launch --num_processes N -m protconv ...``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
