"""``python -m sid4ds`` runs the ``sid4ds`` command."""

import sys

from sid4ds.cli import main

sys.exit(main())
