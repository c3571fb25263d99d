"""How long should the final model train? Held-out IoU of one fit against its step count.

    python benchmarks/final_budget.py --data mag29 --seeds 0 1 2 --steps 800 1600 \\
        --cache /path/to/final_model/mag29/cache

The quick proxy behind the final model's budget (``FINAL_DEFAULTS["max_steps"]``): on the
labelled set and fake normals of a cached SID4DS run of ``benchmarks/final_model.py`` (same
data sets, pool and held-out split), one S with the final model's recipe (today's defaults
of S, seeded like the cached run's S, no cross-validation) is trained for each budget of
``--steps``, and at five evenly spaced checkpoints of each fit the held-out set is scored at
the pool's share of defective images (:func:`sid4ds.estimators.detection.detection_scores`):
defect IoU, defective images found and normal images flagged at threshold 0.5, and the IoU
at the best threshold of a grid (what the cross-validation could at best choose). One
torch thread unless ``--threads``. Prints one line per checkpoint; ``--out FILE`` appends
them as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from final_model import (  # this script's folder is on sys.path
    DATA_SETS,
    load_data,
    sid4ds_run,
    split,
    training_set,
)

from sid4ds import SegmentationLearner
from sid4ds.estimators.detection import detection_counts, detection_scores

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def held_out_curve(model: SegmentationLearner, X_test: np.ndarray, masks_test: np.ndarray,
                   ratio: float, tags: dict[str, Any], out: str | None
                   ) -> Callable[[int], bool]:
    """An ``on_step`` callback that scores the held-out set at five checkpoints of the fit."""
    checks = set(np.round(np.arange(1, 6) * model.max_steps / 5).astype(int).tolist())
    started = time.perf_counter()
    half = THRESHOLDS.index(0.5)

    def score(done: int) -> bool:
        if done not in checks:
            return False
        counts = detection_counts(model.predict_proba(X_test), masks_test, THRESHOLDS)
        scores = detection_scores(counts, ratio)
        best = int(np.argmax(scores["iou"]))
        row = {**tags, "step": done, "iou": float(scores["iou"][half]),
               "found": float(scores["detected"][half]),
               "flagged": float(scores["false_alarms"][half]),
               "best_threshold": THRESHOLDS[best], "best_iou": float(scores["iou"][best]),
               "seconds": time.perf_counter() - started}
        print(" ".join(f"{key} {value}" for key, value in tags.items())
              + f" step {done}: IoU {row['iou']:.3f} found {row['found']:.2f} flagged "
              f"{row['flagged']:.2f} (best threshold {row['best_threshold']}: "
              f"{row['best_iou']:.3f}) {row['seconds']:.0f} s", flush=True)
        if out:
            with open(out, "a") as handle:
                handle.write(json.dumps(row) + "\n")
        return False

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATA_SETS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=[800, 1600])
    parser.add_argument("--cache", required=True,
                        help="the cache folder of benchmarks/final_model.py for --data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="append one JSON line per checkpoint to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, is_defective = load_data(args.data)
    print(json.dumps({"arguments": vars(args), "torch": torch.__version__}), flush=True)
    for seed in args.seeds:
        pool, test = split(data, is_defective, seed)
        run = sid4ds_run(data, pool, seed, Path(args.cache))
        rows, _, masks = training_set(data, run)
        ratio = float(is_defective[pool].mean())
        for n_steps in args.steps:
            model = SegmentationLearner(max_steps=n_steps, best_window=0, random_state=seed)
            score = held_out_curve(model, data.X[test], data.masks[test], ratio,
                                   {"data": args.data, "seed": seed, "budget": n_steps},
                                   args.out)
            model.fit(data.X[rows], masks, on_step=score)


if __name__ == "__main__":
    main()
