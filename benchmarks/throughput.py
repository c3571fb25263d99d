"""Training and scoring throughput of the sid4ds estimators (images per second).

    python benchmarks/throughput.py --image-size 64 --n-samples 256

Prints the settings, torch's thread count and, for each estimator with its default network,
images per second for one training epoch and for inference (SegmentationLearner.predict_proba,
ReconstructionScorer E_msmr, which runs ``n_blocks`` masked copies per image, and E_sdr).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from sid4ds import ReconstructionScorer, SegmentationLearner
from sid4ds.datasets import make_defect_images


def timed(function, repeats: int = 2) -> float:
    """Best wall time of ``repeats`` calls, after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-samples", type=int, default=256)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    X, masks = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                                  defect_ratio=0.2, random_state=0)
    print(f"settings: {vars(args)}; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {platform.processor() or platform.machine()}")
    segmenter = SegmentationLearner(max_epochs=1, device=args.device, random_state=0)
    scorer = ReconstructionScorer(max_epochs=1, device=args.device, random_state=0)
    n = len(X)
    rows = [
        ("SegmentationLearner fit (1 epoch)", timed(lambda: segmenter.fit(X, masks), 1)),
        ("SegmentationLearner predict_proba", timed(lambda: segmenter.predict_proba(X))),
        ("ReconstructionScorer fit(X) (1 epoch)", timed(lambda: scorer.fit(X), 1)),
        (f"ReconstructionScorer E_msmr ({scorer.n_blocks} blocks)",
         timed(lambda: scorer.score_samples(X))),
        ("ReconstructionScorer E_sdr", timed(lambda: scorer.score_samples(X, regions=masks))),
    ]
    print("| operation | images/s | seconds |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {n / seconds:.0f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
