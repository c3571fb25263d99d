"""The ``sid4ds`` command line (also ``python -m sid4ds``).

``sid4ds demo`` runs SID4DS on generated images; ``init``, ``query``, ``import``,
``status``, ``report``, ``export``, ``train`` and ``predict`` drive a labelling session
with a human labeller;
``benchmark`` runs the paper's comparison protocol. One module per concern:
:mod:`~sid4ds.cli.app` (the parser and error handling), :mod:`~sid4ds.cli.demo`,
:mod:`~sid4ds.cli.session`, :mod:`~sid4ds.cli.benchmark`, :mod:`~sid4ds.cli.options`
(shared options) and :mod:`~sid4ds.cli.types` (every argparse type).
"""

from sid4ds.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
