"""``python -m drkit``: the ``drkit`` command (also ``torchrun --nproc_per_node N -m drkit train ...``)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
