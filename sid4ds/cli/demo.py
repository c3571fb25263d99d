"""``sid4ds demo``: SID4DS on built-in generated images, with the true masks as labeller."""

from __future__ import annotations

import argparse
import time
from typing import Any

from sid4ds._core.random import make_rng
from sid4ds.cli.types import count, fraction, positive_int, share
from sid4ds.metrics import defective_rows

__all__ = ["add_demo_command"]


def add_demo_command(commands: Any) -> None:
    """Add ``sid4ds demo`` to the subcommands."""
    demo = commands.add_parser(
        "demo", help="run SID4DS on generated defect images and print what it found",
        description="Run the SID4DS active-learning loop (Algorithm 1) on built-in generated "
                    "defect images, with the true masks as the labeller, and compare the "
                    "defects found with random sampling.")
    demo.add_argument("--n-samples", type=positive_int, default=1000,
                      help="pool size (default 1000)")
    demo.add_argument("--image-size", type=positive_int, default=64,
                      help="image side (default 64)")
    demo.add_argument("--defect-ratio", type=fraction, default=0.05,
                      help="share of defective images (default 0.05)")
    demo.add_argument("--label-share", type=share, default=0.1,
                      help="share of the pool labelled per round, K (default 0.1)")
    demo.add_argument("--rounds", type=count, default=2,
                      help="iterations after the cold start (default 2)")
    demo.add_argument("--epochs-m", type=positive_int,
                      help="epochs of the reconstruction learner M (default 12; 8 with "
                           "--quick)")
    demo.add_argument("--steps-s", type=positive_int,
                      help="optimiser steps of the segmentation learner S per round "
                           "(default 1000; 400 with --quick)")
    demo.add_argument("--quick", action="store_true",
                      help="smaller networks and shorter training (width 8, depth 2, M 8 "
                           "epochs, S 400 steps): a look in about two minutes")
    demo.add_argument("--seed", type=count, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from sid4ds.datasets import make_defect_images
    from sid4ds.engine.loop import run_sid4ds
    from sid4ds.engine.rounds import labels_per_round
    from sid4ds.estimators.reconstruction import ReconstructionScorer
    from sid4ds.estimators.segmentation import SegmentationLearner

    X, masks = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                                  defect_ratio=args.defect_ratio, random_state=args.seed)
    is_defective = defective_rows(masks)
    n_label = labels_per_round(args.label_share, len(X))
    scorer = ReconstructionScorer()
    segmenter = SegmentationLearner()
    if args.quick:
        scorer.set_params(base_channels=8, depth=2, max_epochs=8)
        segmenter.set_params(base_channels=8, depth=2, max_steps=400)
    if args.epochs_m is not None:
        scorer.set_params(max_epochs=args.epochs_m)
    if args.steps_s is not None:
        segmenter.set_params(max_steps=args.steps_s)
    print("sid4ds demo: SID4DS active learning on generated defect images")
    print(f"  pool: {len(X)} images of {args.image_size}x{args.image_size}, "
          f"{int(is_defective.sum())} defective ({is_defective.mean():.1%}), seed {args.seed}")
    print(f"  budget: K={n_label} images per round ({args.label_share:.0%} of the pool), "
          f"cold start + {args.rounds} rounds")
    print(f"  M: {scorer!r}")
    print(f"  S: {segmenter!r}")
    started = time.perf_counter()
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=args.rounds, n_label=n_label,
                     expected_defect_ratio=args.defect_ratio, segmenter=segmenter,
                     scorer=scorer, random_state=args.seed, verbose=0 if args.quiet else 1)
    elapsed = time.perf_counter() - started
    rng = make_rng(args.seed)
    random_pick = rng.permutation(len(X))[: run.rounds[-1].n_labeled]
    n_total = int(is_defective.sum())
    print()
    print(run.table(n_defective_total=n_total))
    print()
    print(f"SID4DS found {run.rounds[-1].cumulative_defective} of {n_total} defective images "
          f"by labelling {run.rounds[-1].n_labeled} of {len(X)}; random sampling with the "
          f"same budget found {int(is_defective[random_pick].sum())} (seed {args.seed}).")
    print(f"total time {elapsed:.0f} s")
    print("next, on your own images: `sid4ds init run1 --images DIR --image-size 64`, then "
          "`sid4ds query run1` (the user guide walks through a session)")
    return 0

