"""``python -m sparseae.tracking ...``: see :mod:`sparseae.tracking.cli`."""

import sys

from .cli import main

sys.exit(main())
