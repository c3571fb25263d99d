"""The ``sid4ds`` command line (also ``python -m sid4ds``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from sid4ds.active import run_sid4ds
    from sid4ds.datasets import make_defect_images
    from sid4ds.reconstruction import ReconstructionScorer
    from sid4ds.segmentation import SegmentationLearner

    X, masks = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                                  defect_ratio=args.defect_ratio, random_state=args.seed)
    is_defective = masks.reshape(len(masks), -1).any(axis=1)
    n_label = max(1, int(round(args.label_share * len(X))))
    scorer = ReconstructionScorer(max_epochs=args.epochs_m)
    segmenter = SegmentationLearner(max_epochs=args.epochs_s)
    if args.quick:
        scorer.set_params(base_channels=8, depth=2)
        segmenter.set_params(base_channels=8, depth=2)
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
    rng = np.random.default_rng(args.seed)
    random_pick = rng.permutation(len(X))[: run.rounds[-1]["n_labeled"]]
    n_total = int(is_defective.sum())
    print()
    print(run.table(n_defective_total=n_total))
    print()
    print(f"SID4DS found {run.rounds[-1]['cumulative_defective']} of {n_total} defective images "
          f"by labelling {run.rounds[-1]['n_labeled']} of {len(X)}; random sampling with the "
          f"same budget found {int(is_defective[random_pick].sum())} (seed {args.seed}).")
    print(f"total time {elapsed:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sid4ds`` command."""
    parser = argparse.ArgumentParser(
        prog="sid4ds",
        description="Pick the images of a production line worth labelling (SID4DS).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run SID4DS on generated defect images and print what it found",
        description="Run the SID4DS active-learning loop (Algorithm 1) on built-in generated "
                    "defect images, with the true masks as the labeller, and compare the "
                    "defects found with random sampling.")
    demo.add_argument("--n-samples", type=int, default=1000, help="pool size (default 1000)")
    demo.add_argument("--image-size", type=int, default=64, help="image side (default 64)")
    demo.add_argument("--defect-ratio", type=float, default=0.05,
                      help="share of defective images (default 0.05)")
    demo.add_argument("--label-share", type=float, default=0.1,
                      help="share of the pool labelled per round, K (default 0.1)")
    demo.add_argument("--rounds", type=int, default=2,
                      help="iterations after the cold start (default 2)")
    demo.add_argument("--epochs-m", type=int, default=12,
                      help="epochs of the reconstruction learner M (default 12)")
    demo.add_argument("--epochs-s", type=int, default=30,
                      help="epochs of the segmentation learner S (default 30)")
    demo.add_argument("--quick", action="store_true", help="smaller networks, for a fast look")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sid4ds`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"sid4ds {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
