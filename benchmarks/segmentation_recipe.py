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

With ``--from-run FOLDER --strategy NAME`` the images, the split and the training set come
from a finished benchmark run instead (its ``settings.json`` and ``labeled.csv``): the first
``--labelled-share`` of the pool that strategy labelled (``--strategy pool``: the whole
pool), so recipes are compared on the sets the strategies really chose (issue 31):

    python benchmarks/segmentation_recipe.py --from-run docs/results/run11_mag29 \
        --strategy sid4ds --seeds 0 --steps 1000 --epochs --by-class \
        --variant lr1e3:lr=0.001

``--by-class`` adds the IoU and the share found of each defect class of the held-out
images (the npz's ``class_id``); ``--record FILE`` appends every fit as one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sid4ds import ReconstructionScorer, SegmentationLearner
from sid4ds.cli.types import parameter
from sid4ds.engine.rounds import labels_per_round
from sid4ds.evaluation import (
    histories_from_labeled,
    labels_at,
    load_dataset,
    load_run_data,
    pool_and_test,
)
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


def run_training_sets(folder: str, strategy: str,
                      npz: str | None = None) -> tuple[Any, dict, dict]:
    """The data of a finished run (its npz at ``npz`` when given: it has moved), its
    arguments, and per seed the selection history of ``strategy`` (``"pool"``: None)."""
    settings = json.loads((Path(folder) / "settings.json").read_text(encoding="utf-8"))
    arguments = settings["arguments"]
    if npz is not None:
        arguments["npz"] = npz
    with open(Path(folder) / "labeled.csv", newline="", encoding="utf-8") as handle:
        histories = histories_from_labeled(list(csv.DictReader(handle)))
    if strategy == "pool":
        sets = {seed: None for seed, _ in histories}
    else:
        sets = {seed: history for (seed, name), history in histories.items()
                if name == strategy}
    if not sets:
        names = sorted({name for _, name in histories})
        raise SystemExit(f"--strategy {strategy!r} is not in {folder}'s labeled.csv ({names})")
    return load_run_data(arguments), arguments, sets


def class_rows(npz: str | None, data_description: dict) -> tuple[np.ndarray, list[str]] | None:
    """The npz's class id of each loaded image (every image loaded, no subset), or None."""
    if npz is None or data_description.get("defect_fraction") is not None:
        return None
    with np.load(npz, allow_pickle=False) as arrays:
        if "class_id" not in arrays.files:
            return None
        return arrays["class_id"], [str(name) for name in arrays["class_names"]]


def threshold_free(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """What S's probabilities are worth whatever the threshold: the IoU at the best of the
    thresholds 0.05, 0.10, …, 0.95 on these images (an upper bound of what a threshold
    chosen on other images gives), that threshold, the pixels' average precision, and the
    ROC AUC of defective against normal images ranked by S's largest and mean probability
    (S's ranking quality, what a query score built on it can reach)."""
    from sklearn.metrics import average_precision_score
    thresholds = np.round(np.arange(0.05, 0.96, 0.05), 2)
    ious = [defect_iou(truth, probabilities >= value) for value in thresholds]
    best = int(np.argmax(ious))
    every = np.arange(truth.size)
    sample = every if truth.size <= 2_000_000 else every[:: truth.size // 2_000_000 + 1]
    precision = average_precision_score(truth.reshape(-1)[sample].astype(bool),
                                        probabilities.reshape(-1)[sample])
    from sklearn.metrics import roc_auc_score
    defective = truth.reshape(len(truth), -1).any(axis=1)
    flat = probabilities.reshape(len(probabilities), -1)
    ranking = {}
    if 0 < defective.sum() < len(defective):  # how well S alone ranks images (a query score)
        ranking = {"auc_max": float(roc_auc_score(defective, flat.max(axis=1))),
                   "auc_mean": float(roc_auc_score(defective, flat.mean(axis=1)))}
    return {"iou_best": ious[best], "best_threshold": float(thresholds[best]),
            "pixel_ap": float(precision), **ranking}


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
    parser.add_argument("--npz", help="an .npz data set (default: generated images; with "
                                      "--from-run, where the run's npz lies now)")
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
    parser.add_argument("--from-run", metavar="FOLDER",
                        help="a finished benchmark run: its data, split and labelled sets")
    parser.add_argument("--strategy", default="sid4ds",
                        help="with --from-run: whose labelled set to train on (pool: all)")
    parser.add_argument("--by-class", action="store_true",
                        help="IoU and share found per defect class (npz class_id)")
    parser.add_argument("--record", metavar="FILE", help="append each fit as a JSON line")
    args = parser.parse_args()
    run_sets: dict = {}
    if args.from_run:
        data, run_arguments, run_sets = run_training_sets(args.from_run, args.strategy,
                                                          args.npz)
        args.npz, args.test_share = run_arguments["npz"], run_arguments["test_share"]
        label_share = run_arguments["label_share"]
    else:
        data = load_dataset(npz=args.npz, image_size=args.image_size,
                            defect_fraction=args.defect_fraction,
                            test_defective=args.test_defective)
    classes = class_rows(args.npz, data.description) if args.by_class else None
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
        if args.from_run:
            if seed not in run_sets:
                raise SystemExit(f"seed {seed} is not in {args.from_run}")
            history = run_sets[seed]
            if history is None:
                train = pool
            else:
                needed = labels_at(args.labelled_share, len(pool),
                                   labels_per_round(label_share, len(pool)), label_share)
                train = pool[np.concatenate(history)[:needed]]
        else:
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
            probabilities = segmenter.predict_proba(data.X[test])
            predicted = (probabilities >= segmenter.threshold).astype(np.uint8)
            steps = int(sum(entry["steps"] for entry in segmenter.history_))
            rates = image_detection(data.masks[test], predicted)
            row = {"steps": steps, "images": steps * segmenter.batch_size, "seconds": seconds,
                   "iou": defect_iou(data.masks[test], predicted), **rates,
                   **threshold_free(data.masks[test], probabilities)}
            if args.train_metrics:
                row["train_iou"] = defect_iou(data.masks[train], segmenter.predict(data.X[train]))
            if classes is not None:
                class_id, names = classes
                for value in np.unique(class_id[test][is_defective[test]]):
                    members = test[(class_id[test] == value) & is_defective[test]]
                    name = names[value].removeprefix("MT_")
                    row[f"iou_{name}"] = defect_iou(data.masks[members], predicted[
                        np.searchsorted(test, members)])
                    row[f"found_{name}"] = float(
                        defective_rows(predicted[np.searchsorted(test, members)]).mean())
            if args.record:
                with open(args.record, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({
                        "seed": seed, "recipe": recipe, "params": {
                            key: value for key, value in params.items()
                            if key != "encoder_init"},
                        "source": args.from_run or args.npz or "generated",
                        "strategy": args.strategy if args.from_run else "all defective",
                        "share": args.labelled_share, **row}) + "\n")
            budget = params["max_steps"] if recipe != "old" else params["max_epochs"]
            rows.setdefault((recipe, budget), []).append(row)
            print(f"  {recipe} {budget}: " + ", ".join(
                f"{key} {value:.3g}" for key, value in row.items()), flush=True)
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
