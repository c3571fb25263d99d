"""Options that several ``sid4ds`` commands share (networks, device, quiet)."""

from __future__ import annotations

import argparse
from typing import Any

from sid4ds.cli.types import positive_int

__all__ = ["add_device", "add_network_arguments", "add_quiet"]


def add_network_arguments(group: Any) -> None:
    """The network options shared by ``sid4ds init`` and ``sid4ds benchmark``."""
    group.add_argument("--steps-s", type=positive_int, metavar="N",
                       help="optimiser steps of the segmentation learner S per training "
                            "(default 1000, whatever the number of labels)")
    group.add_argument("--epochs-s", type=positive_int, metavar="N",
                       help="count S's training in epochs instead (the paper: 150)")
    group.add_argument("--width", type=positive_int, metavar="N",
                       help="channels of the first UNet level of every network (default 16)")
    group.add_argument("--depth", type=positive_int, metavar="N",
                       help="UNet depth of every network; image sides must be divisible by "
                            "2**depth (default 3)")
    group.add_argument("--patch-size", type=positive_int, metavar="N",
                       help="side of the patches M masks during training (default 8)")


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the networks run."""
    parser.add_argument("--device", default="auto",
                        help="where to run the networks: auto (CUDA when available), "
                             "cpu, cuda, cuda:N (default auto)")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress output."""
    parser.add_argument("--quiet", action="store_true",
                        help="no progress messages or progress bars")
