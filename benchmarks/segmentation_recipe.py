"""Held-out defect IoU of the segmentation learner S against training time: old and new recipe.

    python benchmarks/segmentation_recipe.py --seeds 0 1 2
    python benchmarks/segmentation_recipe.py --npz ../shared/data/magnetic_tile_128.npz \\
        --image-size 64 --defect-fraction 0.05 --seeds 0 1 2

The setting of issue 13: S is trained on 30% of the pool, a labelled set holding every
defective pool image (what SID4DS tries to label), and scored on held-out images (split by
source group where the data has groups, plus ``--test-defective`` defective images that are
only ever held out). For each seed and each training budget it trains

- ``new``: ``SegmentationLearner()`` with ``max_steps`` set to each of ``--steps``;
- ``old``: the release-0.x recipe (epochs of uniform batches of 32, constant lr 1e-3,
  0.5·BCE + Dice, brightness/contrast and flips, best weights of the last 20 epochs) for
  each of ``--epochs``;

- each ``--variant NAME:key=value[:key=value...]``: the new recipe with those parameters
  changed, at the largest ``--steps`` (an ablation: ``uniform:defect_share=0``,
  ``dice:loss=bce_dice``, ``rot90:augment=brightness_contrast,flip,rot90``; a value with
  commas is a tuple; ``encoder_init=M`` starts S's encoder from a self-supervised M
  trained on the pool with S's architecture, which needs ``dilation=2``, M's);

and prints one markdown row per (recipe, budget): optimiser steps, images seen, seconds,
IoU (mean ± std over seeds) and the image-level rates at the default threshold; with
``--train-metrics`` also S's IoU on its own training images (underfitting against
overfitting). Timing depends on the machine; compare rows of one run.

    python benchmarks/segmentation_recipe.py --seeds 0 1 2 --steps 1000 --epochs \
        --variant uniform:defect_share=0 dice:loss=bce_dice
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from sid4ds import ReconstructionScorer, SegmentationLearner
from sid4ds.benchmark import load_dataset, pool_and_test
from sid4ds.cli.types import parameter
from sid4ds.metrics import defect_iou, defective_rows, image_detection

#: The recipe of S before issue 13 (release 0.x), one ``set_params`` away.
OLD_RECIPE: dict[str, Any] = {
    "max_steps": None, "batch_size": 32, "lr": 1e-3, "lr_schedule": "constant",
    "defect_share": 0.0, "loss": "bce_dice", "augment": ("brightness_contrast", "flip"),
    "best_window": 20,
}


def labelled_set(is_defective: np.ndarray, pool: np.ndarray, share: float,
                 rng: np.random.Generator) -> np.ndarray:
    """``share`` of the pool: every defective pool image, filled up with random normals."""
    n_labelled = int(round(share * len(pool)))
    defective = pool[is_defective[pool]][:n_labelled]
    normal = rng.choice(pool[~is_defective[pool]], n_labelled - len(defective), replace=False)
    return np.sort(np.concatenate([defective, normal]))


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value:key=value"`` as ``(name, params)``, each ``key=value`` read by
    :func:`sid4ds.cli.types.parameter` (commas make a tuple, as in Python)."""
    name, *settings = text.split(":")
    params: dict[str, Any] = {}
    for setting in settings:
        try:
            key, value = parameter(setting)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected NAME:key=value[:key=value...], e.g. lr1e3:lr=0.001"
            ) from None
        params[key] = value
    return name, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", help="an .npz data set (default: generated images)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--defect-fraction", type=float, default=None)
    parser.add_argument("--test-defective", type=int, default=100)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--labelled-share", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=[250, 500, 1000],
                        help="max_steps of the new recipe")
    parser.add_argument("--epochs", type=int, nargs="*", default=[30, 70],
                        help="max_epochs of the old recipe (30 was its default)")
    parser.add_argument("--variant", nargs="*", default=[], type=parse_variant,
                        help="NAME:key=value[:key=value...]: the new recipe changed so (a,b is "
                             "a tuple, a, a one-element tuple)")
    parser.add_argument("--train-metrics", action="store_true",
                        help="also report IoU on the training images (costs one predict)")
    args = parser.parse_args()
    data = load_dataset(npz=args.npz, image_size=args.image_size,
                        defect_fraction=args.defect_fraction,
                        test_defective=args.test_defective)
    is_defective = defective_rows(data.masks)
    extra = data.test_only if data.test_only.size else np.zeros(len(data.X), dtype=bool)
    runs = [("new", {"max_steps": steps}) for steps in args.steps]
    runs += [("old", {**OLD_RECIPE, "max_epochs": epochs}) for epochs in args.epochs]
    runs += [(name, {"max_steps": max(args.steps), **params}) for name, params in args.variant]
    print(f"settings: {vars(args)}; data {data.description}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    for seed in args.seeds:
        pool, test = pool_and_test(is_defective, args.test_share, random_state=seed,
                                   groups=data.groups, test_only=extra)
        train = labelled_set(is_defective, pool, args.labelled_share,
                             np.random.default_rng(seed))
        print(f"seed {seed}: train {len(train)} ({int(is_defective[train].sum())} defective), "
              f"test {len(test)} ({int(is_defective[test].sum())} defective)", flush=True)
        self_supervised = None
        for recipe, params in runs:
            if params.get("encoder_init") == "M":
                if self_supervised is None:  # M of the cold start: the pool, no labels
                    self_supervised = ReconstructionScorer(random_state=seed).fit(data.X[pool])
                params = {**params, "encoder_init": self_supervised}
            started = time.perf_counter()
            segmenter = SegmentationLearner(random_state=seed, **params)
            segmenter.fit(data.X[train], data.masks[train])
            seconds = time.perf_counter() - started
            predicted = segmenter.predict(data.X[test])
            steps = int(sum(entry["steps"] for entry in segmenter.history_))
            rates = image_detection(data.masks[test], predicted)
            row = {"steps": steps, "images": steps * segmenter.batch_size, "seconds": seconds,
                   "iou": defect_iou(data.masks[test], predicted), **rates}
            if args.train_metrics:
                row["train_iou"] = defect_iou(data.masks[train], segmenter.predict(data.X[train]))
            budget = params["max_steps"] if recipe != "old" else params["max_epochs"]
            rows.setdefault((recipe, budget), []).append(row)
            print(f"  {recipe} {budget}: {row}", flush=True)
    train_column = " train IoU |" if args.train_metrics else ""
    print("\n| recipe | budget | optimiser steps | images seen | seconds | IoU | defective "
          f"found | normal flagged |{train_column}")
    print("|---|---|---|---|---|---|---|---|" + ("---|" if args.train_metrics else ""))
    for (recipe, budget), results in rows.items():
        def mean(key: str, results: list[dict[str, float]] = results) -> float:
            return float(np.mean([result[key] for result in results]))
        ious = [result["iou"] for result in results]
        unit = "steps" if recipe != "old" else "epochs"
        print(f"| {recipe} | {budget} {unit} | {mean('steps'):.0f} | {mean('images'):.0f} | "
              f"{mean('seconds'):.0f} | {np.mean(ious):.3f} ± {np.std(ious):.3f} | "
              f"{mean('detected'):.0%} | {mean('false_alarms'):.0%} |"
              + (f" {mean('train_iou'):.3f} |" if args.train_metrics else ""))


if __name__ == "__main__":
    main()
