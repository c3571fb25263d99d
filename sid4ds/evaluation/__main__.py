"""``python -m sid4ds.evaluation``: the benchmark's command line (:mod:`sid4ds.cli.benchmark`)."""

import sys

from sid4ds.cli.benchmark import main

sys.exit(main())
