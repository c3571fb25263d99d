"""How well does a naive detector find the defects of ``make_defect_images``?

The naive detector scores each image by its largest local deviation,
``max |image - gaussian_filter(image, sigma=2)|``, and flags the top 10% of scores.
The script prints, per seed, the share of defective images among the flagged ones
(recall@10%), then the mean and standard deviation over seeds, the generation time and
percentiles of the defect area.

Run from the repository root::

    PYTHONPATH=. python benchmarks/naive_recall.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from sid4ds.datasets import make_defect_images

BLUR_SIGMA = 2.0
FLAGGED_SHARE = 0.10


def naive_scores(X: np.ndarray) -> np.ndarray:
    """Per-image max |image - Gaussian blur (sigma=2)|, X of shape (n, 1, H, W)."""
    images = X[:, 0].astype(np.float64)
    blurred = ndimage.gaussian_filter(images, sigma=(0, BLUR_SIGMA, BLUR_SIGMA))
    return np.abs(images - blurred).max(axis=(1, 2))


def recall_at_top(scores: np.ndarray, is_defective: np.ndarray, share: float) -> float:
    """Share of defective images among the ``ceil(share * n)`` highest scores."""
    n_flagged = int(np.ceil(share * scores.size))
    flagged = np.argsort(-scores, kind="stable")[:n_flagged]
    return float(is_defective[flagged].sum() / max(is_defective.sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--defect-ratio", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    print(
        f"n_samples={args.n_samples} image_size={args.image_size} "
        f"defect_ratio={args.defect_ratio} seeds={args.seeds}"
    )
    print(
        f"naive score: max |image - gaussian_filter(image, sigma={BLUR_SIGMA})|, "
        f"recall among the top {FLAGGED_SHARE:.0%}"
    )
    recalls, areas = [], []
    for seed in args.seeds:
        start = time.perf_counter()
        X, masks = make_defect_images(
            args.n_samples, args.image_size, args.defect_ratio, random_state=seed
        )
        seconds = time.perf_counter() - start
        is_defective = masks.any(axis=(1, 2))
        recall = recall_at_top(naive_scores(X), is_defective, FLAGGED_SHARE)
        recalls.append(recall)
        areas.append(masks[is_defective].sum(axis=(1, 2)))
        print(
            f"seed {seed}: recall@10% = {recall:.3f} "
            f"({int(is_defective.sum())} defective, generated in {seconds:.2f} s)"
        )
    print(f"mean recall@10% = {np.mean(recalls):.3f} ± {np.std(recalls):.3f} (std)")
    area = np.concatenate(areas)
    if area.size:
        n_pixels = args.image_size**2
        percentiles = (0, 5, 25, 50, 75, 95, 100)
        values = np.percentile(area, percentiles)
        print("defect area percentiles (pixels / % of image):")
        for percentile, value in zip(percentiles, values, strict=True):
            print(f"  p{percentile:<3d} {value:7.1f} px  {100 * value / n_pixels:5.2f}%")


if __name__ == "__main__":
    main()
