"""Held-out defect IoU of the segmentation learner S after a given number of epochs.

    python benchmarks/segmentation_epochs.py --epochs 15 30

Generated images (1000 of 64×64, 5% defective, seed 0), a seeded 800/200 split; for each
epoch count a default ``SegmentationLearner`` is trained on the 800 and scored on the 200.
Prints the IoU, how many pixels it predicts as defect against the true count, the largest
predicted probability and the training time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sid4ds import SegmentationLearner
from sid4ds.datasets import make_defect_images
from sid4ds.estimators.segmentation import defect_iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[15, 30])
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--defect-ratio", type=float, default=0.05)
    args = parser.parse_args()
    X, masks = make_defect_images(n_samples=args.n_samples, image_size=64,
                                  defect_ratio=args.defect_ratio, random_state=0)
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[: int(0.8 * len(X))], order[int(0.8 * len(X)) :]
    print(f"settings: {vars(args)}; train {len(train)}, test {len(test)}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    print("| epochs | IoU | predicted defect pixels | true defect pixels | max probability | s |")
    print("|---|---|---|---|---|---|")
    for epochs in args.epochs:
        started = time.perf_counter()
        segmenter = SegmentationLearner(max_epochs=epochs, random_state=0)
        segmenter.fit(X[train], masks[train])
        probabilities = segmenter.predict_proba(X[test])
        predicted = (probabilities >= segmenter.threshold).astype(np.uint8)
        print(f"| {epochs} | {defect_iou(masks[test], predicted):.3f} | {int(predicted.sum())} "
              f"| {int(masks[test].sum())} | {probabilities.max():.2f} | "
              f"{time.perf_counter() - started:.0f} |")


if __name__ == "__main__":
    main()
