"""Wall time of one SID4DS iterative round against one random-sampling round.

    python benchmarks/round_time.py --n-samples 1000 --image-size 64

The paper's Table 3 comparison. Both rounds start from the same state: a segmentation
learner S trained on a labelled set (K images plus V fake normals) and, for SID4DS, the
label-guided scorer G trained once at the cold start (as the paper does). A round is:
retrain S from its weights on the labelled set (identical in both) and query K images from
the unlabelled pool, by E_sdr (S predicts pseudolabels, G scores inside them) or at
random. Both are timed side by side, ``--repeats`` times each (best kept).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time

import numpy as np
import torch

from sid4ds import ReconstructionScorer, SegmentationLearner, random_sampling, sdr_sampling
from sid4ds.datasets import make_defect_images
from sid4ds.engine.rounds import labels_per_round


class Learner:
    """The minimum the strategies read: the estimator and the labelled set."""

    def __init__(self, estimator, X_training, y_training, sdr_scorer=None) -> None:
        self.estimator = estimator
        self.X_training, self.y_training = X_training, y_training
        self.sdr_scorer = sdr_scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--label-share", type=float, default=0.1)
    parser.add_argument("--epochs-s", type=int, default=30)
    parser.add_argument("--epochs-m", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    X, masks = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                                  random_state=0)
    k = labels_per_round(args.label_share, len(X))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    labelled, pool = order[: 2 * k], order[2 * k :]  # K labelled + V≈K fake normals
    X_train, y_train = X[labelled], masks[labelled]
    print(f"settings: {vars(args)}; K={k}, labelled set {len(labelled)}, pool {len(pool)}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.machine()}")
    segmenter = SegmentationLearner(max_epochs=args.epochs_s, device=args.device,
                                    random_state=0).fit(X_train, y_train)
    segmenter.set_params(warm_start=True)
    scorer = ReconstructionScorer(max_epochs=args.epochs_m, device=args.device,
                                  random_state=0).fit(X[pool])
    guided = copy.deepcopy(scorer).set_params(warm_start=True).fit(X_train, y_train)

    def one_round(strategy, **kwargs) -> tuple[float, float]:
        learner = Learner(copy.deepcopy(segmenter), X_train, y_train, sdr_scorer=guided)
        started = time.perf_counter()
        learner.estimator.fit(X_train, y_train)
        trained = time.perf_counter()
        strategy(learner, X[pool], n_instances=k, **kwargs)
        return trained - started, time.perf_counter() - trained

    timings = {}
    for name, strategy, kwargs in (("random", random_sampling, {"random_state": 0}),
                                   ("sid4ds (E_sdr)", sdr_sampling, {})):
        runs = [one_round(strategy, **kwargs) for _ in range(args.repeats)]
        timings[name] = min(runs, key=sum)
    print("| strategy | train S s | query s | round s |")
    print("|---|---|---|---|")
    for name, (train, query) in timings.items():
        print(f"| {name} | {train:.1f} | {query:.2f} | {train + query:.1f} |")
    ratio = sum(timings["sid4ds (E_sdr)"]) / sum(timings["random"])
    print(f"SID4DS round / random round: {ratio:.3f}x")


if __name__ == "__main__":
    main()
