"""``python -m sparseae``: the same program as the ``sparseae`` console script."""

import sys

from sparseae.cli import main

sys.exit(main())
