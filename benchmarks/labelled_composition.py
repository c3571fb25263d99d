"""What each strategy of a benchmark run labelled: defect class, size and contrast.

    python benchmarks/labelled_composition.py docs/results/run11_mag29 --share 0.3

Reads a finished run's ``settings.json`` and ``labeled.csv``, loads its images as the run did
(:func:`sid4ds.evaluation.load_run_data`) and prints, seed by seed, for the first ``--share``
of the pool each strategy labelled, beside the whole pool and the held-out images: how many
defective images of each class (the npz's ``class_id``; generated data has none), the
distribution of their defect size (defect pixels at the run's image size) and contrast
(|mean inside the mask − mean of a 3-pixel ring around it|, in [0, 1] grey levels), and
the normal images' brightness and texture (standard deviation of the pixels). The question
it answers (issue 31): which kinds of defect a strategy's labelled set over- or
under-samples compared with the held-out images S is scored on.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from sid4ds.engine.rounds import labels_per_round
from sid4ds.evaluation import labels_at, load_run_data, pool_and_test
from sid4ds.metrics import defective_rows


def defect_features(images: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: defect pixels, contrast against a 3-pixel ring, brightness, texture."""
    grey = images.mean(axis=1) if images.ndim == 4 else images
    area = masks.reshape(len(masks), -1).sum(axis=1).astype(float)
    contrast = np.full(len(masks), np.nan)
    for row in np.flatnonzero(area > 0):
        inside = masks[row].astype(bool)
        ring = ndimage.binary_dilation(inside, iterations=3) & ~inside
        if ring.any():
            contrast[row] = abs(grey[row][inside].mean() - grey[row][ring].mean())
    return {"area": area, "contrast": contrast,
            "brightness": grey.reshape(len(grey), -1).mean(axis=1),
            "texture": grey.reshape(len(grey), -1).std(axis=1)}


def quantiles(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if not len(values):
        return "-"
    low, mid, high = np.quantile(values, [0.25, 0.5, 0.75])
    return f"{mid:.3g} [{low:.3g}, {high:.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a benchmark run's folder (settings.json, labeled.csv)")
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--strategies", nargs="*", default=None)
    parser.add_argument("--npz", help="where the run's npz lies now")
    args = parser.parse_args()
    folder = Path(args.run)
    settings = json.loads((folder / "settings.json").read_text())
    arguments = dict(settings["arguments"])
    if args.npz:
        arguments["npz"] = args.npz
    data = load_run_data(arguments)
    class_names: list[str] = []
    class_id = None
    if arguments.get("npz") and arguments.get("defect_fraction") is None:
        with np.load(arguments["npz"], allow_pickle=False) as npz:
            class_id, class_names = npz["class_id"], [str(n) for n in npz["class_names"]]
    is_defective = defective_rows(data.masks)
    features = defect_features(data.X, data.masks)
    with open(folder / "labeled.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    seeds = sorted({int(row["seed"]) for row in rows})
    label_share = arguments.get("label_share", 0.1)
    for seed in seeds:
        pool, test = pool_and_test(is_defective, arguments["test_share"], random_state=seed,
                                   groups=data.groups, test_only=data.test_only)
        n_label = labels_per_round(label_share, len(pool))
        needed = labels_at(args.share, len(pool), n_label, label_share)
        chosen: dict[str, np.ndarray] = {}
        for row in rows:
            if int(row["seed"]) != seed:
                continue
            chosen.setdefault(row["strategy"], [])
            chosen[row["strategy"]].append((int(row["round"]), int(row["position"]),
                                            int(row["image_index"])))
        sets = {"pool": pool, "held out": test}
        for strategy, entries in chosen.items():
            if args.strategies and strategy not in args.strategies:
                continue
            ordered = [index for *_, index in sorted(entries)]
            sets[strategy] = np.array(ordered[:needed])
        print(f"\n## seed {seed}: first {needed} labels (share {args.share})\n")
        header = "| set | n | defective |"
        if class_id is not None:
            header += " " + " | ".join(name.replace("MT_", "") for name in class_names[1:]) + " |"
        header += (" defect px, median [IQR] | contrast | normal brightness | normal texture |")
        print(header)
        print("|" + "---|" * (header.count("|") - 1))
        for name, members in sets.items():
            defects = members[is_defective[members]]
            normals = members[~is_defective[members]]
            share = len(defects) / len(members)
            line = f"| {name} | {len(members)} | {len(defects)} ({share:.0%}) |"
            if class_id is not None:
                counts = np.bincount(class_id[defects], minlength=len(class_names))[1:]
                line += " " + " | ".join(f"{count} ({count / max(1, len(defects)):.0%})"
                                         for count in counts) + " |"
            line += (f" {quantiles(features['area'][defects])} |"
                     f" {quantiles(features['contrast'][defects])} |"
                     f" {quantiles(features['brightness'][normals])} |"
                     f" {quantiles(features['texture'][normals])} |")
            print(line)


if __name__ == "__main__":
    main()
