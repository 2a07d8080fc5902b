"""``python -m drkit.cli``: the ``drkit`` command."""

import sys

from .main import main

sys.exit(main())
